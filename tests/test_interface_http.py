"""The interface server's HTTP side, through real sockets: requests with
bodies of any size, streamed responses, and every limit's status code."""

import contextlib
import gc
import hashlib
import os
import socket
import time
import weakref

import requests
import websocket
from django.test import SimpleTestCase

from channels.messages.http import BODY_CHUNK_SIZE
from tests.interface_consumers import seen
from tests.support.interface_server import download_slowly, raw_request, serving, status_of
from tests.support.worker_threads import wait_for


class HttpTests(SimpleTestCase):
    def test_get_with_query_and_cookies(self):
        with serving() as (handle, _):
            response = requests.get(f"http://127.0.0.1:{handle.port}/x/?a=1&a=2&b=%C3%A9",
                                    cookies={"c": "d"}, timeout=5)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.text,
                         "GET /x/ {'a': ['1', '2'], 'b': ['é']} {'c': 'd'}")
        self.assertEqual(response.cookies["a"], "1")

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        with serving() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=5) as sock:
            for index in range(3):
                sock.sendall(f"GET /n{index}/ HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
                data = b""
                while not data.endswith(f"/n{index}/ {{}} {{}}".encode()):
                    chunk = sock.recv(65536)
                    self.assertTrue(chunk, "connection closed")
                    data += chunk
                self.assertEqual(status_of(data), 200)

    def test_upload_20_mb(self):
        body = os.urandom(20 * 1024 * 1024)
        with serving() as (handle, _):
            response = requests.post(f"http://127.0.0.1:{handle.port}/body/", data=body,
                                     timeout=30)
        self.assertEqual(response.text, f"{len(body)} {hashlib.sha256(body).hexdigest()}")

    def test_chunked_request_body(self):
        parts = [os.urandom(300_000) for _ in range(4)]
        with serving() as (handle, _):
            response = requests.post(f"http://127.0.0.1:{handle.port}/body/",
                                     data=iter(parts), timeout=10)
        body = b"".join(parts)
        self.assertEqual(response.text, f"{len(body)} {hashlib.sha256(body).hexdigest()}")

    def test_streamed_response_arrives_in_chunks(self):
        with serving() as (handle, _):
            start = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{handle.port}/stream/", stream=True,
                                    timeout=5)
            self.assertEqual(response.headers["transfer-encoding"], "chunked")
            arrivals = [(line, time.monotonic() - start) for line in response.iter_lines()]
        self.assertEqual([line for line, _ in arrivals], [b"part0", b"part1", b"part2"])
        # The first part is there long before the last is produced.
        self.assertLess(arrivals[0][1], arrivals[2][1] - 0.5)

    def test_head_gets_headers_only(self):
        with serving() as (handle, _):
            response = raw_request(handle.port, b"HEAD /x/ HTTP/1.1\r\nHost: localhost\r\n"
                                   b"Connection: close\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        self.assertEqual(status_of(head), 200)
        self.assertIn(b"content-length: ", head.lower())
        self.assertEqual(body, b"")

    def test_expect_100_continue(self):
        with serving() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=5) as sock:
            sock.sendall(b"POST /body/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 3\r\n"
                         b"Expect: 100-continue\r\n\r\n")
            self.assertEqual(sock.recv(100), b"HTTP/1.1 100 Continue\r\n\r\n")
            sock.sendall(b"abc")
            self.assertEqual(status_of(sock.recv(1000)), 200)

    def test_client_leaving_early_sends_http_disconnect(self):
        with serving() as (handle, _):
            with socket.create_connection(("127.0.0.1", handle.port)) as sock:
                sock.sendall(b"GET /slow/?delay=0.5 HTTP/1.1\r\nHost: localhost\r\n\r\n")
                time.sleep(0.1)
            wait_for(lambda: seen["http_disconnect"])
        self.assertEqual(seen["http_disconnect"][0]["path"], "/slow/")
        self.assertTrue(seen["http_disconnect"][0]["reply_channel"].startswith("!http.response."))

    def test_client_that_stops_reading_a_response_is_dropped(self):
        cap = 1024 * 1024
        chunks = 40  # 20 MiB, far more than the socket buffers and the cap
        with serving(max_response_buffer=cap, write_timeout=0.3) as (handle, _), \
                self.assertLogs("channels.server", "WARNING") as logs, \
                socket.socket() as sock:
            # A small receive window, so the server's buffers fill at once.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", handle.port))
            sock.sendall(f"GET /big/?chunks={chunks} HTTP/1.1\r\nHost: localhost\r\n\r\n"
                         .encode())
            wait_for(lambda: handle.server.http_connections)
            connection = weakref.ref(next(iter(handle.server.http_connections)))
            wait_for(lambda: seen["http_disconnect"], timeout=10)
            wait_for(lambda: handle.server.connection_count() == 0)
            # The client finds the response cut off.
            received = 0
            sock.settimeout(5)
            with contextlib.suppress(ConnectionResetError):
                while chunk := sock.recv(65536):
                    received += len(chunk)
            self.assertLess(received, chunks * BODY_CHUNK_SIZE)
            # Other clients are served as before.
            self.assertEqual(requests.get(f"http://127.0.0.1:{handle.port}/x/",
                                          timeout=5).status_code, 200)
            # The worker is not held up by the client that left: the rest of
            # the response goes (and is dropped) as fast as it comes.
            wait_for(lambda: seen["big_sent"], timeout=5)
        self.assertEqual(seen["http_disconnect"][0]["path"], "/big/")
        self.assertIn("Dropping the HTTP connection of 127.0.0.1 (/big/)", logs.output[0])
        # Nothing holds the connection, or what was waiting for it, any more.
        gc.collect()
        self.assertIsNone(connection())

    def test_client_that_reads_gets_a_response_far_above_the_cap(self):
        # Workers send in bursts: most of the response waits in the server
        # for a moment even for this client, which is not dropped for it.
        with serving(max_response_buffer=1024 * 1024, write_timeout=2) as (handle, _), \
                self.assertNoLogs("channels.server", "WARNING"):
            response = requests.get(f"http://127.0.0.1:{handle.port}/big/?chunks=40",
                                    timeout=10)
        self.assertEqual(len(response.content), 40 * BODY_CHUNK_SIZE)

    def test_a_slow_reader_makes_the_worker_wait_not_the_server_hold(self):
        # A client reading at 6 MiB/s, far slower than the worker sends: the
        # reply channel is paused whenever more than the cap waits for it.
        cap, chunks = 1024 * 1024, 32
        with serving(max_response_buffer=cap, write_timeout=5) as (handle, backend), \
                self.assertNoLogs("channels.server", "WARNING"):
            response, most_held = download_slowly(handle, f"/big/?chunks={chunks}")
            wait_for(lambda: handle.server.connection_count() == 0)
            paused_left = set(backend._paused)
        self.assertEqual(status_of(response), 200)
        self.assertEqual(response.count(b"x"), chunks * BODY_CHUNK_SIZE)
        # The cap, plus what the reply channel holds (its capacity, 4) and
        # what is on its way while the pause takes effect: far below the
        # 16 MiB response.
        self.assertLess(most_held, cap + 8 * BODY_CHUNK_SIZE)
        self.assertGreater(most_held, cap)
        self.assertEqual(paused_left, set())

    def test_no_response_in_time_is_504(self):
        with serving(http_timeout=0.5) as (handle, _):
            start = time.monotonic()
            response = requests.get(f"http://127.0.0.1:{handle.port}/slow/?delay=2", timeout=5)
            elapsed = time.monotonic() - start
        self.assertEqual(response.status_code, 504)
        self.assertLess(elapsed, 1.9)  # the worker answers after 2 s

    def test_channel_full_is_503_with_retry_after_at_once(self):
        with serving(workers=1, worker_channels=["websocket.receive"],
                     backend_options={"channel_capacity": {"http.request": 1}}) as (handle, _):
            url = f"http://127.0.0.1:{handle.port}/x/"
            # The first request waits (nobody consumes http.request) and fills it.
            first = socket.create_connection(("127.0.0.1", handle.port))
            first.sendall(b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            time.sleep(0.2)
            start = time.monotonic()
            response = requests.get(url, timeout=5)
            first.close()
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response.headers["retry-after"], "1")
        self.assertLess(time.monotonic() - start, 1.0)  # not after HTTP_TIMEOUT (60 s)

    def test_body_too_large_is_413(self):
        with serving(max_body_size=1000) as (handle, _):
            url = f"http://127.0.0.1:{handle.port}/body/"
            self.assertEqual(requests.post(url, data=b"x" * 1000, timeout=5).text.split()[0],
                             "1000")
            self.assertEqual(requests.post(url, data=b"x" * 1001, timeout=5).status_code, 413)
            # Without Content-Length the limit applies as the body arrives.
            chunked = raw_request(handle.port, b"POST /body/ HTTP/1.1\r\nHost: localhost\r\n"
                                  b"Transfer-Encoding: chunked\r\n\r\n7d0\r\n" + b"x" * 2000)
            self.assertEqual(status_of(chunked), 413)

    def test_header_too_large_is_431(self):
        with serving(max_header_size=4096) as (handle, _):
            response = raw_request(handle.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n"
                                   b"X-Big: " + b"a" * 5000 + b"\r\n\r\n")
        self.assertEqual(status_of(response), 431)

    def test_malformed_request_is_400(self):
        with serving() as (handle, _):
            response = raw_request(handle.port, b"GARBAGE\r\n\r\n")
        self.assertEqual(status_of(response), 400)

    def test_host_not_allowed_is_400(self):
        with serving() as (handle, _):
            response = requests.get(f"http://127.0.0.1:{handle.port}/x/",
                                    headers={"Host": "evil.example"}, timeout=5)
        self.assertEqual(response.status_code, 400)

    def test_slow_client_is_408(self):
        with serving(header_timeout=0.3) as (handle, _):
            start = time.monotonic()
            response = raw_request(handle.port, b"GET / HTTP/1.1\r\nHost: loc")
        self.assertEqual(status_of(response), 408)
        self.assertLess(time.monotonic() - start, 1.5)

    def test_malformed_response_is_500_and_server_keeps_serving(self):
        with serving() as (handle, _):
            bad = requests.get(f"http://127.0.0.1:{handle.port}/bad/", timeout=5)
            good = requests.get(f"http://127.0.0.1:{handle.port}/x/", timeout=5)
        self.assertEqual(bad.status_code, 500)
        self.assertEqual(good.status_code, 200)

    def test_access_log_in_common_log_format(self):
        import io

        log = io.StringIO()
        with serving(access_log=log) as (handle, _):
            requests.get(f"http://127.0.0.1:{handle.port}/x/?q=1", timeout=5)
            websocket.create_connection(f"ws://127.0.0.1:{handle.port}/ws/", timeout=5).close()
            with self.assertRaises(websocket.WebSocketBadStatusException):
                websocket.create_connection(f"ws://127.0.0.1:{handle.port}/reject/", timeout=5)
        # The closed socket's line may come before or after the refusal's.
        lines = sorted(log.getvalue().splitlines(), key=lambda line: line.split('"')[1])
        prefix = r'127\.0\.0\.1 - - \[[^\]]+\] '
        expected = [r'"GET /reject/ HTTP/1\.1" 403 -', r'"GET /ws/ HTTP/1\.1" 101 -',
                    r'"GET /x/\?q=1 HTTP/1\.1" 200 \d+', r'"WSDISCONNECT /ws/ HTTP/1\.1" 1000 -']
        self.assertEqual(len(lines), len(expected), lines)
        for line, pattern in zip(lines, expected, strict=True):
            self.assertRegex(line, f"^{prefix}{pattern}$")
