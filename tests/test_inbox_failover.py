"""The Redis shard holding an interface server's reply inbox fails: real
runwsserver and runworker processes on three throwaway Redis servers,
the inbox's server killed (SIGKILL) or stopped (SIGSTOP) under HTTP and
WebSocket traffic (docs/scaling.rst, "When the inbox's shard fails").

What is asserted: every HTTP request waiting then is answered 503 and every
WebSocket closed with 1011 (their times recorded, with a generous bound:
the 2 s target is a benchmark's figure, not a unit test's); new requests
and sockets are served through another shard while it is down and after it
returns; no consumer runs twice (tests/liveness_consumers.py counts the
runs across processes); and each process logs the outage of that shard
once and its end once, with no traceback.
"""

import itertools
import os
import signal
import time

import requests
import websocket
from django.test import SimpleTestCase

from channels.heartbeats import INTERFACE, live
from channels.names import owner_process
from tests.support.redis_servers import RedisServer
from tests.support.worker_threads import wait_for
from tests.test_liveness_processes import Answer, Cluster

# Generous: the server answers within about two seconds of the failure.
ANSWER_BOUND = 10


class InboxCluster(Cluster):
    """A Cluster on three servers of its own, one of which the test fails."""

    def __init__(self, testcase: SimpleTestCase):
        self.servers = [RedisServer().start() for _ in range(3)]
        for server in self.servers:
            testcase.addCleanup(server.cleanup)
        super().__init__(testcase, self.servers, heartbeat_interval=1, heartbeat_ttl=6)

    def record(self) -> dict:
        """The server's heartbeat record (there must be exactly one)."""
        records = [record for record in live(INTERFACE, self.backend)
                   if record["pid"] == self.server.popen.pid]
        assert len(records) == 1, records
        return records[0]

    def inbox_server(self) -> RedisServer:
        token = self.record()["reply_token"]
        return self.servers[self.backend.placement.inbox_shard(token)]

    def started(self, prefix: str) -> bool:
        """A consumer has started on a message named ``prefix``..."""
        return any(line.startswith(f"start {prefix}") for line in self.runs())

    def sent(self, worker) -> int:
        """How many ``http.request`` messages wait or are in ``worker``'s hands."""
        return self.queued("http.request") + len(self.in_hand(worker))

    def echo(self, ws: websocket.WebSocket, text: str) -> None:
        ws.send(text)
        self.testcase.assertEqual(ws.recv(), text)

    def served(self, name: str) -> None:
        response = requests.get(self.url(f"/?name={name}"), timeout=30)
        self.testcase.assertEqual((response.status_code, response.text), (200, name))

    def log_lines(self, process, port: int, text: str) -> int:
        """The lines of the shard on ``port`` that ``process`` logged with ``text``."""
        return sum(line.startswith(f"Redis shard 127.0.0.1:{port} ") and text in line
                   for line in process.lines)


def close_code(ws: websocket.WebSocket) -> int:
    """The code of the close frame the server sends next (skipping echoes)."""
    ws.settimeout(30)
    while True:
        opcode, frame = ws.recv_data_frame(True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")


class InboxShardFailureTests(SimpleTestCase):
    def start(self):
        cluster = InboxCluster(self)
        server = cluster.start_server()
        worker = cluster.start_worker()
        wait_for(lambda: live(INTERFACE, cluster.backend), timeout=30)
        # Until the server has read the worker's heartbeat, it may take
        # it for missing (503): wait for it to serve.
        attempts = itertools.count()
        wait_for(lambda: requests.get(cluster.url(f"/?name=warm{next(attempts)}"),
                                      timeout=30).status_code == 200, timeout=30)
        return cluster, server, worker

    def test_killed_inbox_shard_answers_503_closes_1011_and_serves_through_another(self):
        cluster, server, worker = self.start()
        dead = cluster.inbox_server()
        self.addCleanup(dead.start)  # before the backend's flush
        first_id = cluster.record()["id"]
        sockets = []
        for n in range(4):
            ws = websocket.create_connection(f"ws://127.0.0.1:{cluster.port}/echo/", timeout=30)
            self.addCleanup(ws.close)
            cluster.echo(ws, f"w{n}")
            sockets.append(ws)
        # Requests waiting for a reply: the worker holds one, the others
        # wait behind it.
        waiting = [Answer(cluster.url(f"/block/?name=b{n}")) for n in range(4)]
        wait_for(lambda: cluster.started("b") and cluster.sent(worker) == 4, timeout=30)

        dead.stop()  # SIGKILL
        killed = time.monotonic()
        codes = []
        closed_after = []
        for ws in sockets:
            codes.append(close_code(ws))
            closed_after.append(time.monotonic() - killed)
        statuses = [answer.result(60).status_code for answer in waiting]
        answered_after = [answer.at - killed for answer in waiting]
        self.assertEqual(statuses, [503] * 4)
        self.assertEqual(codes, [1011] * 4)
        self.assertLess(max(answered_after + closed_after), ANSWER_BOUND,
                        (answered_after, closed_after))
        for n in range(4):
            cluster.release(f"b{n}")

        # Served through another shard while it is down.
        wait_for(lambda: cluster.inbox_server() is not dead, timeout=15)
        self.assertEqual(cluster.record()["id"], first_id)  # one record, the same id
        for n in range(5):
            cluster.served(f"down{n}")
        ws = websocket.create_connection(f"ws://127.0.0.1:{cluster.port}/echo/", timeout=30)
        self.addCleanup(ws.close)
        cluster.echo(ws, "w-down")

        dead.start()
        for process in (server, worker):
            wait_for(lambda process=process: cluster.log_lines(
                process, dead.port, "reachable again"), timeout=30)
        for n in range(5):
            cluster.served(f"up{n}")
        cluster.echo(ws, "w-up")

        runs = cluster.runs()
        started = [line for line in runs if line.startswith("start ")]
        self.assertEqual(len(started), len(set(started)), runs)  # nothing ran twice
        for process in (server, worker):
            self.assertEqual(cluster.log_lines(process, dead.port, "is unreachable"), 1,
                             process.output())
            self.assertEqual(cluster.log_lines(process, dead.port, "reachable again"), 1,
                             process.output())
            self.assertNotIn("Traceback", process.output())
        self.assertEqual(sum("Replies to this process could not be read" in line
                             for line in server.lines), 1, server.output())

        # What a worker holds is still known by reply channel: one killed
        # holding a request made through the new inbox has it answered.
        held = Answer(cluster.url("/block/?name=held"))
        wait_for(lambda: cluster.in_hand(worker), timeout=30)
        [[channel, reply]] = cluster.in_hand(worker)
        self.assertEqual(owner_process(reply), cluster.record()["reply_token"])
        self.assertNotEqual(owner_process(reply), first_id)
        worker.popen.kill()
        self.assertEqual(held.result(60).status_code, 503)
        print(f"\n  inbox shard killed: HTTP 503 after {max(answered_after):.2f} s, "
              f"WebSockets closed 1011 after {max(closed_after):.2f} s", end=" ")

    def test_silent_inbox_shard_is_found_out_in_bounded_time(self):
        # SIGSTOP: the connections stay open and nothing answers.
        cluster, server, worker = self.start()
        silent = cluster.inbox_server()
        cluster.served("before")
        waiting = [Answer(cluster.url(f"/block/?name=s{n}")) for n in range(2)]
        wait_for(lambda: cluster.started("s") and cluster.sent(worker) == 2, timeout=30)
        os.kill(silent.process.pid, signal.SIGSTOP)
        stopped = time.monotonic()
        try:
            statuses = [answer.result(60).status_code for answer in waiting]
            answered_after = max(answer.at - stopped for answer in waiting)
            for n in range(2):
                cluster.release(f"s{n}")
            self.assertEqual(statuses, [503, 503])
            self.assertLess(answered_after, ANSWER_BOUND)
            wait_for(lambda: cluster.inbox_server() is not silent, timeout=30)
            cluster.served("during")
        finally:
            os.kill(silent.process.pid, signal.SIGCONT)
        cluster.served("after")
        self.assertNotIn("Traceback", server.output())
        print(f"\n  inbox shard stopped: HTTP 503 after {answered_after:.2f} s", end=" ")
