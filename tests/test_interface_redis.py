"""The interface server on Redis: runwsserver as a real process, Redis
going away and coming back, backpressure (uploads included), and ordering
under four workers."""

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import requests
import websocket
from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings

from channels.backends import create_backend
from channels.interfaces.threaded import start_server
from channels.messages.http import BODY_CHUNK_SIZE
from tests.interface_consumers import seen, seen_lock
from tests.support.interface_server import (
    download_slowly,
    raw_request,
    send_burst,
    status_of,
)
from tests.support.redis_servers import RedisServer, backend_config, shared_servers
from tests.support.worker_threads import wait_for, worker_threads
from tests.test_interface_websocket import close_code

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ROUTING = "tests.interface_consumers.routing"


def make_backend(testcase, servers, **options):
    config = backend_config(servers, routing=ROUTING, **options)
    backend = create_backend("default", config)
    testcase.addCleanup(backend.close)
    testcase.addCleanup(backend.flush)
    for values in seen.values():
        values.clear()
    return config, backend


class RunWsServerTests(SimpleTestCase):
    def test_refuses_local_only_backend(self):
        with self.assertRaisesMessage(CommandError, "only works inside one process"):
            call_command("runwsserver", "127.0.0.1:0")

    def test_serves_then_closes_with_1001_on_sigterm(self):
        config, backend = make_backend(self, shared_servers(1))
        env = dict(os.environ, CHANNELS_TEST_BACKEND=json.dumps(config), PYTHONPATH=REPO,
                   DJANGO_SETTINGS_MODULE="tests.interface_redis_settings")
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.kill)
        banner = process.stdout.readline()
        self.assertIn("RedisChannelBackend", banner)
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        with worker_threads(backend, backend.registry.all_channel_names(), 2):
            response = requests.get(f"http://127.0.0.1:{port}/x/", timeout=5)
            self.assertEqual(response.status_code, 200)
            ws = websocket.create_connection(f"ws://127.0.0.1:{port}/echo/", timeout=5)
            ws.send("over redis")
            self.assertEqual(ws.recv(), "over redis")
            process.send_signal(signal.SIGTERM)
            self.assertEqual(close_code(ws), 1001)
            self.assertEqual(process.wait(10), 0, process.stdout.read())
            wait_for(lambda: seen["disconnect"])
        self.assertEqual(seen["disconnect"][0]["code"], 1001)


    def test_unix_socket(self):
        config, backend = make_backend(self, shared_servers(1))
        env = dict(os.environ, CHANNELS_TEST_BACKEND=json.dumps(config), PYTHONPATH=REPO,
                   DJANGO_SETTINGS_MODULE="tests.interface_redis_settings")
        path = os.path.join(tempfile.mkdtemp(), "ws.sock")
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runwsserver", "--unix-socket", path],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.kill)
        self.assertIn(f"unix:{path}", process.stdout.readline())
        with worker_threads(backend, backend.registry.all_channel_names(), 1), \
                socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(path)
            sock.sendall(b"GET /x/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        self.assertTrue(response.startswith(b"HTTP/1.1 200 "), response)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(10), 0)


class RedisOutageTests(SimpleTestCase):
    def test_redis_stopped_gives_503_quickly_then_recovers(self):
        server = RedisServer().start()
        self.addCleanup(server.stop)
        _, backend = make_backend(self, [server])
        with worker_threads(backend, backend.registry.all_channel_names(), 2):
            handle = start_server(backend, "127.0.0.1", 0)
            self.addCleanup(handle.stop)
            url = f"http://127.0.0.1:{handle.port}/x/"
            self.assertEqual(requests.get(url, timeout=5).status_code, 200)
            server.stop()
            start = time.monotonic()
            response = requests.get(url, timeout=10)
            self.assertEqual(response.status_code, 503)
            self.assertLess(time.monotonic() - start, 3)
            with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
                websocket.create_connection(f"ws://127.0.0.1:{handle.port}/echo/", timeout=10)
            self.assertEqual(caught.exception.status_code, 503)
            server.start()
            wait_for(lambda: requests.get(url, timeout=10).status_code == 200, timeout=20)
            ws = websocket.create_connection(f"ws://127.0.0.1:{handle.port}/echo/", timeout=10)
            ws.send("back")
            self.assertEqual(ws.recv(), "back")
            ws.close()


class RedisBackpressureTests(SimpleTestCase):
    def test_full_websocket_receive_closes_1013(self):
        config, backend = make_backend(
            self, shared_servers(1), channel_capacity={"websocket.receive": 2})
        # Workers for the handshake only: websocket.receive fills up.
        with worker_threads(backend, ["websocket.connect"], 1):
            handle = start_server(backend, "127.0.0.1", 0)
            self.addCleanup(handle.stop)
            ws = websocket.create_connection(f"ws://127.0.0.1:{handle.port}/echo/", timeout=5)
            send_burst(ws, [str(index) for index in range(6)])
            self.assertEqual(close_code(ws), 1013)


class DownloadBackpressureTests(SimpleTestCase):
    def test_a_slow_reader_makes_the_worker_wait_not_the_server_hold(self):
        _, backend = make_backend(self, shared_servers(1))
        cap, chunks = 1024 * 1024, 32
        with worker_threads(backend, ["http.request"], 1):
            handle = start_server(backend, "127.0.0.1", 0, max_response_buffer=cap)
            self.addCleanup(handle.stop)
            response, most_held = download_slowly(handle, f"/big/?chunks={chunks}")
        self.assertEqual(response.count(b"x"), chunks * BODY_CHUNK_SIZE)
        self.assertLess(most_held, cap + 8 * BODY_CHUNK_SIZE)
        # Resumed: nothing is left counted against the channel's inbox.
        shard = backend.shards[0]
        counts = shard.execute("KEYS", f"{backend.prefix}n:*")
        self.assertEqual([shard.execute("HGETALL", key) for key in counts], [[]] * len(counts))


def upload_head(length):
    return (f"POST /body/ HTTP/1.1\r\nHost: localhost\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


class UploadBackpressureTests(SimpleTestCase):
    """Body channels with room for two chunks: the server holds the client
    back instead of answering 503."""

    def start(self, workers=1, **options):
        _, backend = make_backend(self, shared_servers(1),
                                  channel_capacity={"http.request.body.*": 2})
        threads = worker_threads(backend, ["http.request"], workers)
        threads.__enter__()
        self.addCleanup(threads.__exit__, None, None, None)
        handle = start_server(backend, "127.0.0.1", 0, **options)
        self.addCleanup(handle.stop)
        return handle

    def test_slow_view_gets_the_whole_upload_in_order(self):
        # The view first waits four times BODY_TIMEOUT: the client, held
        # back meanwhile, is not timed out for it.
        handle = self.start(body_timeout=0.5)
        body = os.urandom(6 * 1024 * 1024)
        response = requests.post(f"http://127.0.0.1:{handle.port}/body/?pause=2&delay=0.02",
                                 data=body, timeout=60)
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response.text, f"{len(body)} {hashlib.sha256(body).hexdigest()}")

    def test_answer_without_reading_the_upload_reaches_the_client(self):
        # The server holds the client back, the view answers without reading
        # the body: the client must still get the answer, not a reset.
        handle = self.start()
        body = os.urandom(20 * 1024 * 1024)
        for _ in range(3):
            response = requests.post(f"http://127.0.0.1:{handle.port}/slow/?delay=0.2",
                                     data=body, timeout=60)
            self.assertEqual((response.status_code, response.content), (200, b"late"))

    def test_answer_before_the_upload_ends_is_followed_by_a_graceful_close(self):
        # The view answers while the client is held back mid-upload. The
        # server then closes its own side and takes the rest of the upload
        # unread, so the client can send it all and read the answer, with no
        # reset (which over a network may overtake the answer).
        handle = self.start()
        body = os.urandom(16 * 1024 * 1024)
        head = (b"POST /slow/?delay=0.3 HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body))
        with socket.create_connection(("127.0.0.1", handle.port), timeout=30) as sock:
            errors = []

            def upload():
                try:
                    sock.sendall(head + body)
                except OSError as exc:
                    errors.append(exc)

            sender = threading.Thread(target=upload)
            sender.start()
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
            sender.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(status_of(received), 200)
        self.assertTrue(received.endswith(b"\r\n\r\nlate"), received)
        wait_for(lambda: handle.server.connection_count() == 0)

    def test_lingering_ends_after_linger_seconds(self):
        # A client that goes on sending after the answer is cut off after
        # LINGER seconds: lingering costs a connection for a bounded time.
        handle = self.start()
        with socket.create_connection(("127.0.0.1", handle.port), timeout=30) as sock:
            sock.sendall(b"POST /slow/?delay=0 HTTP/1.1\r\nHost: localhost\r\n"
                         b"Content-Length: 50000000\r\n\r\n" + b"x" * (4 * BODY_CHUNK_SIZE))
            received = b""
            while b"late" not in received and (chunk := sock.recv(65536)):
                received += chunk
            answered = time.monotonic()
            try:
                while time.monotonic() - answered < 30:
                    sock.sendall(b"x" * 1000)
                    time.sleep(0.05)
            except OSError:
                pass  # reset: the server has closed
            self.assertLess(time.monotonic() - answered, 30)
        self.assertEqual(status_of(received), 200)
        wait_for(lambda: handle.server.connection_count() == 0)

    def test_client_that_stalls_mid_upload_gets_408(self):
        handle = self.start(body_timeout=1)
        sent = os.urandom(4 * BODY_CHUNK_SIZE)
        response = raw_request(handle.port, upload_head(2 * len(sent)) + sent, timeout=30)
        self.assertEqual(status_of(response), 408)

    def test_view_that_reads_nothing_gets_504_after_http_timeout(self):
        # No worker: the body channel fills, and the server holds the
        # client back until HTTP_TIMEOUT. Exactly what the server reads
        # before it holds back (five chunks) is sent, so that it closes
        # with nothing unread and the client gets the answer.
        handle = self.start(workers=0, http_timeout=1)
        sent = os.urandom(5 * BODY_CHUNK_SIZE)
        response = raw_request(handle.port, upload_head(2 * len(sent)) + sent, timeout=30)
        self.assertEqual(status_of(response), 504)

    def test_redis_gone_mid_upload_is_503(self):
        server = RedisServer().start()
        self.addCleanup(server.stop)
        backend = create_backend("default", backend_config([server], routing=ROUTING))
        self.addCleanup(backend.close)
        handle = start_server(backend, "127.0.0.1", 0)
        self.addCleanup(handle.stop)
        with socket.create_connection(("127.0.0.1", handle.port), timeout=30) as sock:
            sock.sendall(upload_head(8 * BODY_CHUNK_SIZE) + os.urandom(2 * BODY_CHUNK_SIZE))
            wait_for(lambda: backend.receive_many(["http.request"])[0] is not None, timeout=20)
            server.stop()
            start = time.monotonic()
            sock.sendall(os.urandom(BODY_CHUNK_SIZE))
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        self.assertEqual(status_of(response), 503)
        self.assertLess(time.monotonic() - start, 15)


@override_settings(SESSION_ENGINE="django.contrib.sessions.backends.cache")
class OrderingTests(SimpleTestCase):
    def test_enforce_ordering_keeps_order_under_four_workers(self):
        # Room for the whole burst: this is about order, not backpressure.
        config = backend_config(shared_servers(1), channel_capacity={"websocket.receive": 1000},
                                routing="tests.interface_consumers.ordered_routing")
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        with seen_lock:
            seen["receive_order"].clear()
        count = 200
        with worker_threads(backend, ["websocket.receive"], 4):
            handle = start_server(backend, "127.0.0.1", 0)
            self.addCleanup(handle.stop)
            ws = websocket.create_connection(f"ws://127.0.0.1:{handle.port}/o/", timeout=10)
            sender = threading.Thread(target=lambda: [ws.send(str(i)) for i in range(count)])
            sender.start()
            echoed = [ws.recv() for _ in range(count)]
            sender.join()
            ws.close()
        self.assertEqual(echoed, [str(i) for i in range(count)])
        with seen_lock:
            orders = [order for _, order in seen["receive_order"]]
        self.assertEqual(orders, list(range(1, count + 1)))
