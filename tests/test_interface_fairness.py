"""One client cannot hurt the others (issue 17, items 1 and 2), over real
sockets: a WebSocket that sends faster than the workers take its messages
is read no further and only it is closed (1013); an HTTP connection has one
request in flight; a WebSocket client that reads nothing costs the server
at most MAX_WEBSOCKET_BUFFER, measured as the server process's RSS, and is
closed with 1008."""

import json
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time

import websocket
from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.interfaces.threaded import start_server
from tests.interface_consumers import seen
from tests.support.interface_server import ROUTING, send_burst, serving
from tests.support.redis_servers import shared_servers
from tests.support.worker_threads import wait_for, worker_threads
from tests.test_interface_redis import REPO, make_backend
from tests.test_interface_websocket import close_code

NO_CONNECT = "tests.interface_consumers.routing_without_connect"
MIB = 1024 * 1024
# Seconds without progress after which a writer counts as held back.
STALL = 1.0


def connect(port, path, **options):
    return websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30, **options)


def write_until_blocked(sock, chunks, limit):
    """Write ``chunks`` (an iterator of bytes) until the socket has taken
    nothing for ``STALL`` seconds (the server stopped reading, and the
    kernel's buffers are full), or ``limit`` bytes are written. Returns the
    bytes written, the chunks written whole, and what is left of the chunk
    under way (to send once the server reads again, so the stream ends
    whole)."""
    sock.setblocking(False)
    written = count = 0
    try:
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                try:
                    sent = sock.send(view)
                except BlockingIOError:
                    if select.select([], [sock], [], STALL)[1]:
                        continue
                    return written, count, bytes(view)
                written += sent
                view = view[sent:]
            count += 1
            if written >= limit:
                break
    finally:
        sock.setblocking(True)
    return written, count, b""


class GatedBackend(InMemoryChannelBackend):
    """Takes nothing that an interface server sends while ``gate`` is
    clear, as a layer that has not answered yet."""

    def __init__(self, **options):
        super().__init__(**options)
        self.gate = threading.Event()
        self.gate.set()

    def _send_many(self, messages):
        self.gate.wait(60)
        return super()._send_many(messages)


def server_websockets(handle):
    return list(handle.server.websockets)


class WebSocketFairnessTests(SimpleTestCase):
    def test_a_burst_from_one_socket_leaves_the_others_echoing(self):
        # The report: websocket.receive with room for few messages,
        # a slow worker, one socket sending 150 tiny frames in one burst
        # while three others chat.
        _, backend = make_backend(self, shared_servers(1),
                                  channel_capacity={"websocket.receive": 20})
        with worker_threads(backend, ["websocket.connect", "websocket.disconnect"], 1), \
                worker_threads(backend, ["websocket.receive"], 1):
            handle = start_server(backend, "127.0.0.1", 0)
            self.addCleanup(handle.stop)
            users = [connect(handle.port, f"/slow-echo/{index}") for index in range(3)]
            abuser = connect(handle.port, "/slow-echo/abuser")
            send_burst(abuser, [str(index) for index in range(150)])
            for turn in range(5):
                for index, ws in enumerate(users):
                    ws.send(f"{index}-{turn}")
                for index, ws in enumerate(users):
                    self.assertEqual(ws.recv(), f"{index}-{turn}")
            # The abuser got its echoes in order, up to a 1013 if it got one.
            echoes = []
            while True:
                opcode, data = abuser.recv_data(control_frame=True)
                if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    self.assertEqual(int.from_bytes(data[:2], "big"), 1013)
                    break
                echoes.append(data.decode())
                if len(echoes) == 150:
                    break
            self.assertEqual(echoes, [str(index) for index in range(len(echoes))])
            for ws in users:
                ws.close()
            abuser.close()
            wait_for(lambda: len(seen["disconnect"]) == 4, timeout=30)
        codes = {message["path"]: message["code"] for message in seen["disconnect"]}
        self.assertEqual([codes[f"/slow-echo/{index}"] for index in range(3)], [1000] * 3)
        self.assertIn(codes["/slow-echo/abuser"], (1000, 1013))

    def test_a_socket_past_its_messages_in_flight_is_not_read(self):
        backend = GatedBackend(routing=ROUTING)
        for values in seen.values():
            values.clear()
        with worker_threads(backend, ["websocket.connect", "websocket.receive"], 1):
            handle = start_server(backend, "127.0.0.1", 0, max_messages_in_flight=2)
            self.addCleanup(handle.stop)
            ws = connect(handle.port, "/echo/")
            other = connect(handle.port, "/echo/")
            backend.gate.clear()  # what the sockets say stays in flight
            frames = (websocket.ABNF.create_frame(f"{index:08d}" + "x" * 65528,
                                                  websocket.ABNF.OPCODE_TEXT).format()
                      for index in range(2048))  # 128 MiB
            written, count, rest = write_until_blocked(ws.sock, frames, 128 * MIB)
            # The server stopped reading: the kernel's buffers hold the rest.
            self.assertLess(written, 64 * MIB)
            protocol = next(p for p in server_websockets(handle) if p.inbound.in_flight)
            self.assertFalse(protocol.inbound.reading)
            # What one read brought in past the share, no more.
            self.assertLessEqual(len(protocol.inbound.waiting), 4)
            other.send("still here")
            backend.gate.set()
            self.assertEqual(other.recv(), "still here")
            if rest:
                ws.sock.sendall(rest)
                count += 1
            for index in range(count):
                self.assertEqual(ws.recv()[:8], f"{index:08d}")
            ws.close()
            other.close()


    def test_a_socket_within_its_share_waits_for_room_instead_of_1013(self):
        backend = InMemoryChannelBackend(routing=ROUTING,
                                         channel_capacity={"websocket.receive": 1})
        for values in seen.values():
            values.clear()
        with worker_threads(backend, ["websocket.connect"], 1):
            handle = start_server(backend, "127.0.0.1", 0)
            self.addCleanup(handle.stop)
            ws = connect(handle.port, "/echo/")
            [protocol] = server_websockets(handle)
            inbound = protocol.inbound
            ws.send("fits")
            wait_for(lambda: not (inbound.in_flight or inbound.waiting))
            ws.send("waits")  # the channel is full: refused, sent again
            wait_for(lambda: inbound.retry_call is not None or inbound.refused)
            wait_for(lambda: inbound.delay > 0.1)  # refused a few times over
            self.assertEqual(protocol.state, protocol.STATE_OPEN)
            self.assertFalse(inbound.over_share)
            with worker_threads(backend, ["websocket.receive"], 1):
                self.assertEqual(ws.recv(), "fits")
                self.assertEqual(ws.recv(), "waits")
                ws.send("next")
                self.assertEqual(ws.recv(), "next")
            ws.close()


    def test_a_socket_left_without_room_for_http_timeout_gets_1013(self):
        with serving(routing=NO_CONNECT, worker_channels=["websocket.disconnect"],
                     backend_options={"channel_capacity": {"websocket.receive": 1}},
                     http_timeout=1) as (handle, _):
            ws = connect(handle.port, "/echo/")
            [protocol] = server_websockets(handle)
            ws.send("fits")
            wait_for(lambda: not (protocol.inbound.in_flight or protocol.inbound.waiting))
            ws.send("never taken")
            self.assertEqual(close_code(ws), 1013)
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1013)


class HttpPipeliningTests(SimpleTestCase):
    def test_one_request_in_flight_then_reading_stops(self):
        with serving() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=30) as sock:
            sock.sendall(b"GET /hold/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            wait_for(lambda: seen["held"])
            request = b"GET /x/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
            written, _, _ = write_until_blocked(
                sock, iter(lambda: request * 1000, None), 256 * MIB)
            self.assertLess(written, 128 * MIB)
            protocol = next(iter(handle.server.http_connections))
            self.assertFalse(protocol.reading)
            # Nothing behind the held request reached a worker.
            self.assertEqual(seen["held"], [seen["held"][0]])


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1)) / 1024


class UnreadWebSocketTests(SimpleTestCase):
    def test_clients_that_read_nothing_cost_at_most_their_buffer(self):
        clients, limit = 5, 2 * MIB
        # What a socket may pin is its buffer (twice the limit at most) and
        # what its reply channel holds before the pause takes effect (the
        # channel's capacity, of 500 KB messages): 8 here, so that the
        # bound does not depend on how fast a loaded machine pauses.
        capacity = 8
        config, backend = make_backend(self, shared_servers(1),
                                       channel_capacity={"!websocket.send*": capacity})
        server_settings = {"MAX_WEBSOCKET_BUFFER": limit, "WRITE_TIMEOUT": 4}
        env = dict(os.environ, CHANNELS_TEST_BACKEND=json.dumps(config), PYTHONPATH=REPO,
                   CHANNELS_TEST_SERVER=json.dumps(server_settings),
                   DJANGO_SETTINGS_MODULE="tests.interface_redis_settings")
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.kill)
        banner = process.stdout.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        output = []
        reader = threading.Thread(target=lambda: output.extend(process.stdout), daemon=True)
        reader.start()
        with worker_threads(backend, None, clients + 1):
            # Warm up: a message each way.
            ws = connect(port, "/echo/")
            ws.send("warm")
            self.assertEqual(ws.recv(), "warm")
            before = rss_mib(process.pid)
            readers_not = [connect(port, "/firehose/",
                                   sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
                           for _ in range(clients)]
            for client in readers_not:
                client.send("100")  # 50 MB each, never read
            peak = before
            deadline = time.monotonic() + 60
            while len(seen["disconnect"]) < clients and time.monotonic() < deadline:
                peak = max(peak, rss_mib(process.pid))
                # Others are served meanwhile.
                ws.send("still")
                self.assertEqual(ws.recv(), "still")
                time.sleep(0.05)
            self.assertEqual([m["code"] for m in seen["disconnect"]], [1008] * clients)
            # Resumed at the close: the workers' last sends went on (and
            # were dropped by the server), none is left waiting.
            wait_for(lambda: len(seen["firehose"]) == clients, timeout=30)
            ws.send("after")
            self.assertEqual(ws.recv(), "after")
            ws.close()
            for client in readers_not:
                client.sock.close()
        # Per socket, twice the limit and a full reply channel, and the
        # allocator's slack: without the limit, 250 MB would wait.
        self.assertLess(peak - before, clients * (2 * limit / MIB + capacity * 0.5) + 20,
                        f"RSS {before:.0f} MiB before, {peak:.0f} MiB at the peak")
        process.terminate()
        process.wait(10)
        reader.join(5)
        text = "".join(output)
        self.assertEqual(text.count("Closing WebSocket /firehose/"), clients, text)
        self.assertEqual(text.count('"WSDISCONNECT /firehose/ HTTP/1.1" 1008'), clients, text)
