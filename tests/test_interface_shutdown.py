"""Stopping the interface server: requests in progress answered, or 503 at
the deadline (SHUTDOWN_TIMEOUT), never a reset; WebSockets closed 1001 and
idle connections closed at once; no new connections.

In this process on the in-memory backend, with the deadline on a
``task.Clock``; then ``runwsserver`` as a real process on Redis, stopped
with SIGTERM."""

import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import requests
import websocket
from django.test import SimpleTestCase
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread

from channels.backends import create_backend
from channels.interfaces.server import CLOSE_WAIT
from tests.interface_consumers import seen
from tests.support.interface_server import serving, status_of
from tests.support.processes import Process, django_env
from tests.support.redis_servers import backend_config, shared_servers
from tests.support.worker_threads import wait_for, worker_threads
from tests.test_interface_websocket import close_code, connect


def on_reactor(function, *args):
    return blockingCallFromThread(reactor, function, *args)


class Shutdown:
    """``handle``'s server told to stop, its deadlines on a Clock that only
    ``advance`` moves; ``done`` is set once the shutdown has finished."""

    def __init__(self, handle, timeout):
        self.clock = Clock()
        self.done = threading.Event()
        handle.stopped = True  # this is its stop: serving() must not stop it again

        def begin():
            handle.server.clock = self.clock
            handle.server.shutdown(timeout).addBoth(lambda _: self.done.set())

        on_reactor(begin)

    def advance(self, seconds):
        on_reactor(self.clock.advance, seconds)


def send_request(port, target):
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(f"GET {target} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    return sock


def read_until(sock, ending):
    data = b""
    while not data.endswith(ending):
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"closed before {ending!r}: {data!r}")
        data += chunk
    return data


def read_to_end(sock):
    """Everything until the server closes; a reset fails the test."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def headers_of(response):
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
    return dict(line.split(": ", 1) for line in head.split("\r\n")[1:])


class ShutdownTests(SimpleTestCase):
    def test_requests_in_progress_are_answered_whole_then_it_stops_at_once(self):
        with serving() as (handle, _):
            plain = send_request(handle.port, "/hold/?seconds=0.5")
            streamed = send_request(handle.port, "/hold/?stream=1&seconds=0.5")
            wait_for(lambda: len(seen["held"]) == 2)
            shutdown = Shutdown(handle, timeout=60)
            with self.assertRaises(requests.ConnectionError):  # no longer listening
                requests.get(f"http://127.0.0.1:{handle.port}/x/", timeout=5)
            plain_response = read_to_end(plain)
            streamed_response = read_to_end(streamed)
            # Answered, and the connections closed: it is done, long before
            # its deadline (which the clock never reaches).
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(status_of(plain_response), 200)
        self.assertTrue(plain_response.endswith(b"\r\n\r\nheld"), plain_response)
        self.assertEqual(headers_of(plain_response)["connection"], "close")
        self.assertEqual(status_of(streamed_response), 200)
        self.assertTrue(streamed_response.endswith(b"start\n\r\n4\r\nend\n\r\n0\r\n\r\n"),
                        streamed_response)
        self.assertNotIn("gone", seen["held"])

    def test_request_still_running_at_the_deadline_gets_503_and_its_view_hears(self):
        with serving() as (handle, _):
            sock = send_request(handle.port, "/hold/")
            wait_for(lambda: seen["held"])
            shutdown = Shutdown(handle, timeout=5)
            shutdown.advance(4.9)
            self.assertEqual(on_reactor(handle.server.requests_in_progress), 1)
            shutdown.advance(0.1)
            response = read_to_end(sock)
            wait_for(lambda: "gone" in seen["held"])  # its http.disconnect
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(status_of(response), 503)
        headers = headers_of(response)
        self.assertEqual((headers["connection"], headers["retry-after"]), ("close", "1"))
        self.assertEqual(seen["http_disconnect"][0]["path"], "/hold/")

    def test_response_under_way_at_the_deadline_ends_incomplete_not_whole(self):
        with serving() as (handle, _):
            sock = send_request(handle.port, "/hold/?stream=1")
            started = read_until(sock, b"start\n\r\n")
            shutdown = Shutdown(handle, timeout=1)
            shutdown.advance(1)
            rest = read_to_end(sock)
            wait_for(lambda: "gone" in seen["held"])
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(status_of(started), 200)
        self.assertEqual(headers_of(started)["transfer-encoding"], "chunked")
        # No last chunk: the client can tell the body is cut short.
        self.assertEqual(rest, b"")

    def test_websockets_and_idle_connections_close_at_once(self):
        with serving() as (handle, _):
            ws = connect(handle)
            idle = send_request(handle.port, "/x/")
            read_until(idle, b"{} {}")  # answered; the connection stays open
            held = send_request(handle.port, "/hold/")
            wait_for(lambda: seen["held"])
            shutdown = Shutdown(handle, timeout=60)
            self.assertEqual(close_code(ws), 1001)
            self.assertEqual(read_to_end(idle), b"")
            wait_for(lambda: seen["disconnect"])
            # Meanwhile the request goes on, until its deadline.
            self.assertEqual(on_reactor(handle.server.requests_in_progress), 1)
            self.assertFalse(shutdown.done.is_set())
            shutdown.advance(60)
            self.assertEqual(status_of(read_to_end(held)), 503)
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(seen["disconnect"][0]["code"], 1001)

    def test_handshake_waiting_for_its_worker_gets_503(self):
        with serving() as (handle, _):
            statuses = []

            def handshake():
                try:
                    connect(handle, "/slow/?delay=0.5").close()
                except websocket.WebSocketBadStatusException as exc:
                    statuses.append(exc.status_code)

            client = threading.Thread(target=handshake)
            client.start()
            wait_for(lambda: any(ws.decision is not None
                                 for ws in list(handle.server.websockets)))
            shutdown = Shutdown(handle, timeout=60)
            client.join(10)
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(statuses, [503])

    def test_request_that_arrives_while_stopping_gets_503(self):
        with serving() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=10) as sock:
            sock.sendall(b"GET /x/ HTTP/1.1\r\n")
            wait_for(lambda: any(not http.idle for http in list(handle.server.http_connections)))
            shutdown = Shutdown(handle, timeout=60)
            sock.sendall(b"Host: localhost\r\n\r\n")
            response = read_to_end(sock)
            self.assertTrue(shutdown.done.wait(10))
        self.assertEqual(status_of(response), 503)
        self.assertIn(b"Server shutting down", response)

    def test_client_that_never_closes_is_dropped_after_close_wait(self):
        with serving() as (handle, _), socket.create_connection(
                ("127.0.0.1", handle.port), timeout=10) as sock:
            # A WebSocket client that will not answer the close frame.
            sock.sendall(b"GET /echo/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                         b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                         b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
            self.assertEqual(status_of(read_until(sock, b"\r\n\r\n")), 101)
            shutdown = Shutdown(handle, timeout=1)
            shutdown.advance(1)
            self.assertEqual(on_reactor(handle.server.connection_count), 1)
            shutdown.advance(CLOSE_WAIT)
            self.assertTrue(shutdown.done.wait(10))


def output_problems(output):
    return [line for line in output.splitlines()
            if re.search(r"ERROR|CRITICAL|Traceback|unreachable", line)]


class RunWsServerShutdownTests(SimpleTestCase):
    """``runwsserver`` on Redis, stopped with SIGTERM, as a process manager
    does; the workers are threads of this process."""

    def start(self, *options, workers=2):
        """``runwsserver`` with ``options``, and ``workers`` worker threads."""
        config = backend_config(shared_servers(1), routing="tests.interface_consumers.routing")
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        for values in seen.values():
            values.clear()
        self.env = django_env("tests.interface_redis_settings",
                              CHANNELS_TEST_BACKEND=json.dumps(config))
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0", *options],
            env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.kill)
        banner = process.stdout.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        if workers:
            threads = worker_threads(backend, backend.registry.all_channel_names(), workers)
            threads.__enter__()
            self.addCleanup(threads.__exit__, None, None, None)
        return process, port

    def test_long_request_gets_503_at_the_deadline_and_websockets_1001_at_once(self):
        timeout = 2
        process, port = self.start("--shutdown-timeout", str(timeout))
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/echo/", timeout=10)
        ws.send("before")
        self.assertEqual(ws.recv(), "before")
        held = send_request(port, "/hold/")
        wait_for(lambda: seen["held"], timeout=10)
        answers = {}

        def read_held():
            answers["response"] = read_to_end(held)
            answers["at"] = time.monotonic()

        reader = threading.Thread(target=read_held)
        reader.start()
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        self.assertEqual(close_code(ws), 1001)
        self.assertNotIn("response", answers)  # closed while the request still runs
        reader.join(timeout + 20)
        self.assertEqual(process.wait(timeout + 20), 0)
        exited = time.monotonic()
        output = process.stdout.read()
        response = answers["response"]
        self.assertEqual(status_of(response), 503)
        self.assertEqual(headers_of(response)["connection"], "close")
        # Not before the deadline; and the process exits soon after it.
        self.assertGreaterEqual(answers["at"] - stopped, timeout - 0.1)
        self.assertLess(exited - stopped, timeout + 10)
        wait_for(lambda: "gone" in seen["held"], timeout=10)
        wait_for(lambda: seen["disconnect"], timeout=10)
        self.assertEqual(seen["disconnect"][0]["code"], 1001)
        self.assertIn("Stopping: 1 request(s) in progress get up to 2 s", output)
        self.assertEqual(output_problems(output), [], output)

    def test_a_second_signal_answers_what_still_runs_now(self):
        process, port = self.start()  # the default 30 s
        held = send_request(port, "/hold/")
        wait_for(lambda: seen["held"], timeout=10)
        process.send_signal(signal.SIGTERM)
        while not (line := process.stdout.readline()).startswith("Stopping"):
            self.assertTrue(line, "the server exited")
        self.assertIn("Stopping: 1 request(s) in progress get up to 30 s", line)
        process.send_signal(signal.SIGINT)  # Ctrl-C, or systemd impatient
        self.assertEqual(status_of(read_to_end(held)), 503)
        self.assertEqual(process.wait(20), 0)  # well before the 30 s
        output = process.stdout.read()
        self.assertIn("Stopping now: requests still running get 503.", output)
        self.assertEqual(output_problems(output), [], output)

    def test_requests_that_finish_in_time_are_answered_and_it_exits_promptly(self):
        process, port = self.start("--shutdown-timeout", "60")
        plain = send_request(port, "/hold/?seconds=1")
        streamed = send_request(port, "/hold/?stream=1&seconds=1")
        wait_for(lambda: len(seen["held"]) == 2, timeout=10)
        stopped = time.monotonic()
        process.send_signal(signal.SIGTERM)
        plain_response = read_to_end(plain)
        streamed_response = read_to_end(streamed)
        self.assertEqual(process.wait(30), 0)
        exited = time.monotonic()
        output = process.stdout.read()
        self.assertTrue(plain_response.endswith(b"\r\n\r\nheld"), plain_response)
        self.assertTrue(streamed_response.endswith(b"end\n\r\n0\r\n\r\n"), streamed_response)
        # Once answered, it exits: the 60 s are a bound, not a wait.
        self.assertLess(exited - stopped, 30)
        self.assertEqual(output_problems(output), [], output)

    def test_runworker_finishes_the_request_in_hand_on_sigterm(self):
        process, port = self.start(workers=0)
        worker = Process([sys.executable, "-m", "django", "runworker", "-v", "2"],
                         self.env)
        self.addCleanup(worker.stop)
        worker.wait_for_line("listening on")
        sock = send_request(port, "/hold/?seconds=1")
        worker.wait_for_line(r"^http\.request \(reply: ")
        self.assertEqual(worker.stop(timeout=30), 0)
        self.assertEqual(status_of(read_until(sock, b"\r\n\r\nheld")), 200)
        self.assertIn("Worker stopped.", worker.output())
        self.assertEqual(output_problems(worker.output()), [], worker.output())
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(30), 0)
        self.assertEqual(output_problems(process.stdout.read()), [])

    def test_idle_server_stops_without_a_false_outage(self):
        process, port = self.start()
        self.assertEqual(requests.get(f"http://127.0.0.1:{port}/x/", timeout=5).status_code,
                         200)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(process.wait(30), 0)
        output = process.stdout.read()
        self.assertIn("Interface server stopped.", output)
        self.assertEqual(output_problems(output), [], output)
