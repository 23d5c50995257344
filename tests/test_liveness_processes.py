"""Workers that are not running, and workers that die: real runwsserver and
runworker processes on Redis (throwaway servers), and the interface server
on the in-memory backend with worker threads.

What is asserted: the answers (503 with Retry-After, a WebSocket closed
1011), their times with generous slack (the bounds are in
docs/heartbeats.rst), one log line per event, and every consumer run
counted across processes (tests/liveness_consumers.py): nothing runs
twice, and nothing whose client was answered 503 runs afterwards."""

import json
import os
import signal
import sys
import tempfile
import threading
import time

import requests
import websocket
from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.heartbeats import WORKER, live
from channels.interfaces.threaded import start_server
from tests.support.processes import ROOT, Process, django_env
from tests.support.redis_servers import backend_config, redis_backend, shared_servers
from tests.support.worker_threads import wait_for, worker_threads

ROUTING = "tests.liveness_consumers.routing"
NO_WORKER_LOG = "No worker is running for http.request"
BACK_LOG = "A worker is running for http.request again"


class Cluster:
    """A runwsserver and runworker processes of one test on a Redis
    backend of their own (a fresh PREFIX on ``servers``, the shared one
    unless given)."""

    def __init__(self, testcase: SimpleTestCase, servers=None, routing: str = ROUTING,
                 settings: str = "tests.liveness_settings", **backend_options):
        servers = servers or shared_servers(1)
        self.config = backend_config(servers, routing=routing, **backend_options)
        self.backend = redis_backend(servers, routing=routing, prefix=self.config["PREFIX"],
                                     **backend_options)
        testcase.addCleanup(self.backend.close)
        testcase.addCleanup(self.backend.flush)
        self.runs_dir = tempfile.mkdtemp(prefix="channels-runs-")
        self.env = django_env(settings,
                              CHANNELS_TEST_BACKEND=json.dumps(self.config),
                              CHANNELS_TEST_RUNS=self.runs_dir)
        self.testcase = testcase
        self.port = None

    def start_server(self, *options: str) -> Process:
        server = Process([sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0",
                          *options], self.env)
        self.testcase.addCleanup(server.stop)
        self.port = int(server.wait_for_line(r"http://127\.0\.0\.1:(\d+)/").group(1))
        self.server = server
        return server

    def start_worker(self, *options: str, holding: bool = False) -> Process:
        """A runworker with ``options``; ``holding`` keeps what it took
        ahead while its consumer runs (tests/support/holding_worker.py)."""
        command = ([sys.executable, os.path.join(ROOT, "tests", "support", "holding_worker.py")]
                   if holding else [sys.executable, "-m", "django", "runworker", *options])
        worker = Process(command, self.env)
        self.testcase.addCleanup(worker.stop)
        worker.wait_for_line("listening on")
        return worker

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def runs(self) -> list[str]:
        try:
            with open(os.path.join(self.runs_dir, "runs.txt")) as runs:
                return runs.read().split("\n")[:-1]
        except FileNotFoundError:
            return []

    def release(self, name: str) -> None:
        open(os.path.join(self.runs_dir, f"release-{name}"), "w").close()

    def queued(self, channel: str) -> int:
        layout = self.backend.layout
        return sum(shard.execute("LLEN", layout.list_key(channel))
                   for shard in self.backend.shards)

    def in_hand(self, worker: Process) -> list[list[str]]:
        """What ``worker``'s heartbeat says it holds."""
        for record in live(WORKER, self.backend):
            if record["pid"] == worker.popen.pid:
                return record["in_hand"]
        return []

    def log_count(self, text: str) -> int:
        return sum(text in line for line in self.server.lines)


class Answer:
    """An HTTP request made in a thread: its response (or error) and how
    long after ``since`` it came."""

    def __init__(self, url: str):
        self.url = url
        self.response = None
        self.error = None
        self.at = None
        self.thread = threading.Thread(target=self.get, daemon=True)
        self.thread.start()

    def get(self) -> None:
        try:
            self.response = requests.get(self.url, timeout=90)
        except Exception as exc:
            self.error = exc
        self.at = time.monotonic()

    def result(self, timeout: float = 90) -> requests.Response:
        self.thread.join(timeout)
        if self.response is None:
            raise AssertionError(f"{self.url}: no response ({self.error})")
        return self.response


def kill(worker: Process) -> None:
    worker.popen.send_signal(signal.SIGKILL)
    worker.popen.wait()


class NoWorkerTests(SimpleTestCase):
    def test_503_at_once_without_a_worker_logged_once_then_served_when_one_starts(self):
        cluster = Cluster(self, heartbeat_interval=0.5, heartbeat_ttl=1.5)
        cluster.start_server()
        # The first request may come before the server has read a whole TTL
        # of heartbeats (it then waits for one); either way it is answered.
        refused = []
        for number in range(4):
            start = time.monotonic()
            response = requests.get(cluster.url(f"/count/?name=n{number}"), timeout=30)
            self.assertLess(time.monotonic() - start, 5 + 5)
            self.assertEqual(response.status_code, 503)
            self.assertIn("No worker is running", response.text)
            self.assertEqual(response.headers["Retry-After"], "1")
            refused.append(f"n{number}")
        handshake = websocket.WebSocket()
        with self.assertRaises(websocket.WebSocketBadStatusException) as caught:
            handshake.connect(f"ws://127.0.0.1:{cluster.port}/echo/", timeout=30)
        self.assertEqual(caught.exception.status_code, 503)
        self.assertEqual(cluster.log_count(NO_WORKER_LOG), 1)

        cluster.start_worker()
        wait_for(lambda: requests.get(cluster.url("/count/?name=served"),
                                      timeout=30).status_code == 200, timeout=30)
        ws = websocket.create_connection(f"ws://127.0.0.1:{cluster.port}/echo/", timeout=30)
        ws.send("echoed")
        self.assertEqual(ws.recv(), "echoed")
        ws.close()
        wait_for(lambda: cluster.log_count(BACK_LOG) == 1, timeout=10)
        self.assertEqual(cluster.log_count(NO_WORKER_LOG), 1)
        # What was answered 503 never runs, even if it was sent.
        self.assertFalse([line for line in cluster.runs() if line.split()[1] in refused])

    def test_in_memory_backend_with_worker_threads(self):
        backend = InMemoryChannelBackend(routing="tests.interface_consumers.routing",
                                         heartbeat_interval=0.2, heartbeat_ttl=0.5)
        handle = start_server(backend, "127.0.0.1", 0)
        self.addCleanup(handle.stop)
        url = f"http://127.0.0.1:{handle.port}/x/"
        wait_for(lambda: requests.get(url, timeout=10).status_code == 503, timeout=10)
        response = requests.get(url, timeout=10)
        self.assertEqual(response.text, "503 No worker is running\n")
        with worker_threads(backend, None, 2):
            wait_for(lambda: requests.get(url, timeout=10).status_code == 200, timeout=10)
            [record] = live(WORKER, backend)
            self.assertEqual(record["threads"], 2)


class DeadWorkerTests(SimpleTestCase):
    def test_requests_a_killed_worker_held_are_answered_503_within_three_heartbeats(self):
        # The default heartbeats: every 5 s, a TTL of 10 s.
        cluster = Cluster(self)
        cluster.start_server()
        holder = cluster.start_worker(holding=True)
        wait_for(lambda: requests.get(cluster.url("/count/?name=warm"),
                                      timeout=30).status_code == 200, timeout=30)
        # The worker is busy while A, B and C queue up; then it takes them
        # in one batch: the first runs (and blocks), the others are taken
        # ahead.
        z = Answer(cluster.url("/block/?name=Z"))
        wait_for(lambda: "start Z" in cluster.runs(), timeout=30)
        held = [Answer(cluster.url(f"/block/?name={name}")) for name in "ABC"]
        wait_for(lambda: cluster.queued("http.request") == 3, timeout=30)
        cluster.release("Z")
        self.assertEqual(z.result().status_code, 200)
        wait_for(lambda: len(cluster.in_hand(holder)) == 3, timeout=30)
        # Another worker runs from now on: nothing is left to it.
        other = cluster.start_worker()
        wait_for(lambda: len(live(WORKER, cluster.backend)) == 2, timeout=30)

        kill(holder)
        killed = time.monotonic()
        for answer in held:
            response = answer.result()
            self.assertEqual(response.status_code, 503, answer.url)
            self.assertIn("The worker handling this request stopped", response.text)
            self.assertEqual(response.headers["Retry-After"], "1")
            self.assertLess(answer.at - killed, 15 + 5, answer.url)
        wait_for(lambda: cluster.log_count("It held 3 message(s)") == 1, timeout=10)
        self.assertEqual(cluster.log_count(NO_WORKER_LOG), 0)

        self.assertEqual(requests.get(cluster.url("/count/?name=D"), timeout=30).status_code, 200)
        for name in "ABC":
            cluster.release(name)
        other.stop()
        # One of them ran once, cut off; the others went with the worker
        # and never ran.
        runs = cluster.runs()
        self.assertEqual(len([line for line in runs if line in ("start A", "start B", "start C")]),
                         1, runs)
        self.assertEqual(runs[-2:], ["start D", "end D"])
        self.assertFalse([line for line in runs if line in ("end A", "end B", "end C")])

    def test_websockets_whose_messages_a_killed_worker_held(self):
        # A TTL of 4 s: a worker starved of CPU on a loaded machine still
        # counts as live until it is killed.
        cluster = Cluster(self, heartbeat_interval=1, heartbeat_ttl=4)
        cluster.start_server("--connect-timeout", "60")
        receiver = cluster.start_worker(holding=True)
        ws = websocket.create_connection(f"ws://127.0.0.1:{cluster.port}/block/", timeout=30)
        ws.send("R")
        wait_for(lambda: "start R" in cluster.runs(), timeout=30)
        handshake_status = []

        def handshake():
            try:
                websocket.create_connection(
                    f"ws://127.0.0.1:{cluster.port}/block-connect/?name=K", timeout=60)
                handshake_status.append(101)
            except websocket.WebSocketBadStatusException as exc:
                handshake_status.append(exc.status_code)

        connecting = threading.Thread(target=handshake, daemon=True)
        connecting.start()
        connector = cluster.start_worker(holding=True)
        wait_for(lambda: "start K" in cluster.runs(), timeout=30)
        wait_for(lambda: cluster.in_hand(receiver) and cluster.in_hand(connector), timeout=30)

        kill(receiver)
        kill(connector)
        killed = time.monotonic()
        ws.settimeout(30)
        opcode, frame = ws.recv_data_frame(True)
        self.assertEqual(opcode, websocket.ABNF.OPCODE_CLOSE)
        self.assertEqual(int.from_bytes(frame.data[:2], "big"), 1011)
        connecting.join(30)
        self.assertEqual(handshake_status, [503])
        self.assertLess(time.monotonic() - killed, 4 + 10)
        self.assertEqual(cluster.runs(), ["start R", "start K"])


class RunningWorkerTests(SimpleTestCase):
    def test_a_stopped_worker_is_not_a_dead_one(self):
        # SIGTERM: the worker finishes, gives back what it took ahead and
        # writes itself stopped; nothing is answered for it.
        cluster = Cluster(self, heartbeat_interval=0.5, heartbeat_ttl=1.5)
        cluster.start_server()
        worker = cluster.start_worker()
        wait_for(lambda: requests.get(cluster.url("/count/?name=warm"),
                                      timeout=30).status_code == 200, timeout=30)
        blocked = Answer(cluster.url("/block/?name=S"))
        wait_for(lambda: "start S" in cluster.runs(), timeout=30)
        worker.popen.send_signal(signal.SIGTERM)
        replacement = cluster.start_worker()
        cluster.release("S")
        self.assertEqual(blocked.result().status_code, 200)
        self.assertEqual(worker.popen.wait(30), 0)
        wait_for(lambda: [record["pid"] for record in live(WORKER, cluster.backend)]
                 == [replacement.popen.pid], timeout=30)
        self.assertEqual(cluster.log_count("stopped without a word"), 0)
