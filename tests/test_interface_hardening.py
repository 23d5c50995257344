"""The attacks of issue 17 against the interface server, through real
sockets: each gets the documented answer, once in the log, and the server
keeps serving (the property-based tests in test_interface_fuzz.py try
many more inputs of the same kinds)."""

import contextlib
import io
import os
import socket
import subprocess
import sys
import threading
import time
from http import HTTPStatus

import requests
import websocket
from django.test import SimpleTestCase

from tests.interface_consumers import seen
from tests.support.interface_server import (
    handshake,
    raw_request,
    send_burst,
    serving,
    status_of,
)
from tests.support.server_process import ROOT
from tests.support.worker_threads import wait_for

NO_CONNECT = "tests.interface_consumers.routing_without_connect"


def responses_in(data: bytes) -> int:
    return data.count(b"HTTP/1.1 ")


class ServingTestCase(SimpleTestCase):
    def assert_still_serving(self, handle):
        response = requests.get(f"http://127.0.0.1:{handle.port}/x/", timeout=5)
        self.assertEqual(response.status_code, 200)


class ProxyHeaderTests(ServingTestCase):
    BAD = [
        ("X-Forwarded-Port", "\u00b2"),  # str.isdigit() says yes, int() says no
        ("X-Forwarded-Port", "1" * 30),
        ("X-Forwarded-Port", "70000"),
        ("X-Forwarded-For", "not-an-address"),
        ("X-Forwarded-For", "1.2.3.4, 10.0.0.1:8080"),
        ("X-Forwarded-Proto", "gopher"),
    ]

    def test_each_bad_header_is_400_logged_once_for_http_and_handshakes(self):
        log = io.StringIO()
        with serving(proxy_headers=True, access_log=log) as (handle, _), \
                self.assertLogs("channels.server", "WARNING") as logs:
            for name, value in self.BAD:
                head = f"{name}: {value}\r\n".encode()
                response = raw_request(handle.port, b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n"
                                       b"X-Forwarded-For: 10.0.0.1\r\n" + head + b"\r\n")
                self.assertEqual(status_of(response), 400, (name, value, response))
                self.assertIn(b"Bad proxy header", response)
                response = raw_request(handle.port, handshake(
                    b"X-Forwarded-For: 10.0.0.1\r\n" + head))
                self.assertEqual(status_of(response), 400, (name, value, response))
            # A good set is used, for both.
            response = requests.get(f"http://127.0.0.1:{handle.port}/x/", timeout=5, headers={
                "X-Forwarded-For": "1.1.1.1, 2001:db8::1", "X-Forwarded-Port": "443",
                "X-Forwarded-Proto": "https"})
            self.assertEqual(response.status_code, 200)
        self.assertEqual(len(logs.records), 2 * len(self.BAD))
        for record in logs.records:
            self.assertIsNone(record.exc_info)
            self.assertTrue(record.getMessage().startswith("Bad proxy header from 127.0.0.1: "))
        self.assertIn('2001:db8::1 - - [', log.getvalue())
        self.assertEqual(log.getvalue().count('"GET /x/ HTTP/1.1" 400 '), len(self.BAD))

    def test_without_proxy_headers_they_are_ignored(self):
        with serving() as (handle, _):
            response = raw_request(handle.port, b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n"
                                   b"X-Forwarded-Port: \xc2\xb2\r\nConnection: close\r\n\r\n")
        self.assertEqual(status_of(response), 200)


class FramingTests(ServingTestCase):
    def test_content_length_with_transfer_encoding_is_400_then_closed(self):
        # Chunked, the body ends at once and a request follows; by
        # Content-Length, that request is the body. Neither is served.
        hidden = b"GET /hidden/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
        body = b"0\r\n\r\n" + hidden
        with serving() as (handle, _):
            response = raw_request(handle.port, (
                b"POST /x/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: "
                + str(len(body)).encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body))
            self.assert_still_serving(handle)
        self.assertEqual(status_of(response), 400)
        self.assertIn(b"Content-Length and Transfer-Encoding together", response)
        self.assertEqual(responses_in(response), 1)  # then closed: /hidden/ never answered
        self.assertNotIn(b"/hidden/", response)

    def test_ambiguous_framing_is_400(self):
        heads = [
            # HTTP/1.0 has no Transfer-Encoding: a 1.0 proxy would not know it.
            b"POST /x/ HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n",
            # The h11 < 0.16 smuggling bug (GHSA-vqfr-h8mv-ghfj): any two bytes
            # after a chunk were taken for its CRLF.
            b"POST /body/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabcXX0\r\n\r\n",
        ]
        with serving() as (handle, _):
            for head in heads:
                response = raw_request(handle.port, head)
                self.assertEqual(status_of(response), 400, head)
                self.assertEqual(responses_in(response), 1)


class UpgradeBodyTests(ServingTestCase):
    def test_declared_body_over_the_limit_is_413_before_the_upgrade(self):
        # It waited for HEADER_TIMEOUT (408) before: here that is 30 s, and
        # the raw request gives up after 5.
        with serving(max_body_size=1000, header_timeout=30) as (handle, _):
            response = raw_request(handle.port, handshake(b"Content-Length: 100000000\r\n"))
            self.assert_still_serving(handle)
        self.assertEqual(status_of(response), 413)

    def test_handshake_with_a_body_is_400_and_reaches_no_worker(self):
        body = b"x" * (600 * 1024)
        with serving() as (handle, _):
            for head in (b"Content-Length: %d\r\n" % len(body), b"Transfer-Encoding: chunked\r\n"):
                data = handshake(head, path=b"/x/") + (
                    body if b"Length" in head else b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
                response = raw_request(handle.port, data)
                self.assertEqual(status_of(response), 400, response[:200])
                self.assertIn(b"A WebSocket handshake has no body", response)
            self.assert_still_serving(handle)

    def test_handshake_with_an_empty_body_is_fine(self):
        with serving() as (handle, _):
            response = raw_request(handle.port, handshake(b"Content-Length: 0\r\n"),
                                   read_until_close=False)
        self.assertEqual(status_of(response), 101)


class SlowClientTests(ServingTestCase):
    def test_a_byte_now_and_then_does_not_hold_a_body_open(self):
        # 10 bytes a second: each byte came in time before, so the upload
        # held its connection for as long as its 100,000 bytes took.
        with serving(body_timeout=0.5, min_body_rate=100) as (handle, _), \
                socket.create_connection(("127.0.0.1", handle.port), timeout=10) as sock:
            sock.sendall(b"POST /body/ HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Length: 100000\r\n\r\n")
            start = time.monotonic()
            answer = b""
            with contextlib.suppress(OSError):
                while not answer and time.monotonic() - start < 10:
                    sock.sendall(b"x")
                    sock.settimeout(0.1)
                    with contextlib.suppress(TimeoutError):
                        answer = sock.recv(1000)
            self.assertEqual(status_of(answer), 408)
            self.assert_still_serving(handle)

    def test_a_body_sent_at_the_minimum_rate_is_served(self):
        # 500 bytes every 0.05 s: 10 kB/s, twenty times the minimum rate.
        pieces = [os.urandom(500) for _ in range(30)]
        with serving(body_timeout=0.5, min_body_rate=500) as (handle, _):

            def slowly():
                for piece in pieces:
                    yield piece
                    time.sleep(0.05)

            response = requests.post(f"http://127.0.0.1:{handle.port}/body/", data=slowly(),
                                     timeout=10)
        self.assertEqual(response.status_code, 200)
        self.assertTrue(response.text.startswith("15000 "), response.text)

    def test_connections_per_client_address(self):
        log = io.StringIO()
        with serving(max_connections_per_client=2, access_log=log) as (handle, _):
            first = socket.create_connection(("127.0.0.1", handle.port))
            second = socket.create_connection(("127.0.0.1", handle.port))
            wait_for(lambda: handle.server.connection_count() == 2)
            response = raw_request(handle.port, b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            self.assertEqual(status_of(response), 429)
            self.assertIn(b"Retry-After: 1", response)
            first.close()
            wait_for(lambda: handle.server.connection_count() == 1)
            self.assert_still_serving(handle)
            second.close()
        self.assertIn('127.0.0.1 - - [', log.getvalue())
        self.assertIn('"-" 429 -', log.getvalue())


class DescriptorLimitTests(SimpleTestCase):
    def test_past_the_descriptor_limit_new_connections_get_503_not_a_reset(self):
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.limited_server", "200"], cwd=ROOT,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)
        reader.start()
        sockets = []
        try:
            port, cap = (int(word) for word in process.stdout.readline().split())
            self.assertLess(cap, 200)
            statuses = []
            for _ in range(cap + 40):
                sock = socket.create_connection(("127.0.0.1", port), timeout=10)
                sockets.append(sock)
                sock.sendall(b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
                answer = sock.recv(65536)  # a reset would raise, a close give b""
                statuses.append(status_of(answer))
            self.assertEqual(statuses.count(200), cap)
            self.assertEqual(statuses.count(503), 40)
            for sock in sockets:
                sock.close()
            sockets = []
            # Served again once connections close.
            deadline = time.monotonic() + 10
            while True:
                response = raw_request(port, b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n"
                                       b"Connection: close\r\n\r\n")
                if status_of(response) == 200 or time.monotonic() > deadline:
                    break
            self.assertEqual(status_of(response), 200)
        finally:
            for sock in sockets:
                sock.close()
            process.stdin.close()
            process.wait(20)
            reader.join(5)
        output = "".join(stderr)
        self.assertIn(f"At most {cap} connections (not MAX_CONNECTIONS, 20000)", output)
        self.assertNotIn("Traceback", output)


class AccessLogTests(ServingTestCase):
    def test_every_answer_has_a_line_and_a_reason_phrase(self):
        log = io.StringIO()
        with serving(access_log=log, header_timeout=0.3, max_header_size=4096) as (handle, _):
            garbage = raw_request(handle.port, b"GARBAGE\r\n\r\n")
            incomplete = raw_request(handle.port, b"GET / HTTP/1.1\r\nHost: loc")
            # A head that arrives in pieces is limited by h11, before it is
            # a request.
            with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                             + (b"X-Big: " + b"a" * 1000 + b"\r\n") * 10)
                too_big = sock.recv(1000)
            too_large = raw_request(handle.port, b"POST /x/ HTTP/1.1\r\nHost: localhost\r\n"
                                    b"Content-Length: 999999999999\r\n\r\n")
            self.assert_still_serving(handle)
        self.assertTrue(garbage.startswith(b"HTTP/1.1 400 Bad Request\r\n"), garbage)
        self.assertTrue(incomplete.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), incomplete)
        self.assertTrue(too_big.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"),
                        too_big)
        # "Content Too Large" from Python 3.13 (RFC 9110's name).
        phrase = HTTPStatus(413).phrase.encode()
        self.assertTrue(too_large.startswith(b"HTTP/1.1 413 " + phrase + b"\r\n"), too_large)
        lines = log.getvalue().splitlines()
        self.assertEqual(len(lines), 5, lines)
        for line, expected in zip(lines, ['"-" 400 ', '"-" 408 ', '"-" 431 ',
                                          '"POST /x/ HTTP/1.1" 413 ', '"GET /x/ HTTP/1.1" 200 '],
                                  strict=True):
            self.assertRegex(line, r"^127\.0\.0\.1 - - \[[^\]]+\] ")
            self.assertIn(expected, line)

    def test_server_closes_are_logged_with_their_code_when_the_client_leaves(self):
        log = io.StringIO()
        with serving(max_message_size=1000, access_log=log) as (handle, _):
            ws = websocket.create_connection(f"ws://127.0.0.1:{handle.port}/echo/", timeout=5)
            ws.send("a" * 1001)
            ws.sock.close()  # without answering the close frame
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1009)
        with serving(routing=NO_CONNECT, worker_channels=["websocket.disconnect"],
                     backend_options={"channel_capacity": {"websocket.receive": 1}},
                     access_log=log) as (handle, _):
            ws = websocket.create_connection(f"ws://127.0.0.1:{handle.port}/full/", timeout=5)
            send_burst(ws, ["fits", *["full"] * 5])
            opcode, _ = ws.recv_data(control_frame=True)
            self.assertEqual(opcode, websocket.ABNF.OPCODE_CLOSE)
            ws.sock.close()
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1013)
        self.assertIn('"WSDISCONNECT /echo/ HTTP/1.1" 1009 -', log.getvalue())
        self.assertIn('"WSDISCONNECT /full/ HTTP/1.1" 1013 -', log.getvalue())


class VersionTests(ServingTestCase):
    def test_only_http_1_is_spoken(self):
        with serving() as (handle, _):
            for version in (b"2.0", b"0.9", b"1.2"):
                response = raw_request(handle.port, b"GET /x/ HTTP/" + version +
                                       b"\r\nHost: localhost\r\n\r\n")
                self.assertTrue(response.startswith(
                    b"HTTP/1.1 505 HTTP Version Not Supported\r\n"), response)
            self.assert_still_serving(handle)
