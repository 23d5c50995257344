"""The deployment the fault report breaks: three Redis shards (or two and
a Sentinel-managed one), one ``runwsserver`` and two ``runworker``
processes of testproject (benchmarks/fault_settings.py), all real
processes on loopback, from tests/support/.

Every line the processes log is kept with its time, so that the report
shows what an operator sees during each fault; every run of the load's
view is counted (benchmarks/fault_views.py).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import sys
import tempfile
import time

from channels.backends import create_backend
from channels.backends.redis.sharding import shard_for
from channels.heartbeats import INTERFACE, WORKER, live
from tests.support.processes import ROOT, Process, django_env
from tests.support.redis_sentinels import SentinelGroup
from tests.support.redis_servers import RedisServer

PROJECT = os.path.join(ROOT, "testproject")
HOLDING_WORKER = os.path.join(ROOT, "tests", "support", "holding_worker.py")
SERVER_BANNER = r"http://127\.0\.0\.1:(\d+)/"


class Cluster:
    """``shards`` Redis shards (the first Sentinel-managed with
    ``sentinel``), ``runwsserver`` and ``workers`` ``runworker``
    processes, with ``heartbeat`` their HEARTBEAT_INTERVAL and _TTL;
    ``holding`` workers keep what they took ahead while their consumer
    runs (tests/support/holding_worker.py)."""

    def __init__(self, heartbeat: tuple[float, float] = (5, 15), shards: int = 3,
                 workers: int = 2, sentinel: bool = False, holding: bool = False,
                 server_options: tuple[str, ...] = ()) -> None:
        self.directory = tempfile.mkdtemp(prefix="channels-faults-")
        self.runs_file = os.path.join(self.directory, "runs.txt")
        self.sentinel = SentinelGroup().start() if sentinel else None
        self.redis = [RedisServer().start() for _ in range(shards - sentinel)]
        hosts = [server.url for server in self.redis]
        if self.sentinel is not None:
            hosts.insert(0, self.sentinel.url())
        self.hosts = hosts
        self.env = django_env("benchmarks.fault_settings", PROJECT,
                              CHANNELS_REDIS_HOSTS=" ".join(hosts),
                              CHANNELS_FAULT_RUNS=self.runs_file,
                              CHANNELS_HEARTBEAT_INTERVAL=str(heartbeat[0]),
                              CHANNELS_HEARTBEAT_TTL=str(heartbeat[1]),
                              DJANGO_DB=os.path.join(self.directory, "db.sqlite3"))
        self.backend = create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": hosts, "ROUTING": {}, "HEARTBEAT_INTERVAL": heartbeat[0],
            "HEARTBEAT_TTL": heartbeat[1]})
        self.logs: list[tuple[float, str, str]] = []
        self.server_options = server_options
        self.holding = holding
        self.server: Process | None = None
        self.port = 0
        self.workers: list[Process] = []
        try:
            self.start_server()
            if self.sentinel is not None:
                # The inbox faults are their own: this one is the Sentinel's.
                self.avoid_inbox_on(0)
            for _ in range(workers):
                self.start_worker()
            self.wait_for(lambda: len(live(WORKER, self.backend)) == workers,
                          "the workers' heartbeats")
            # As in a deployment that has run for a while: the shards have
            # held heartbeats for a whole TTL, so that the server concludes
            # from a record's absence (channels/interfaces/liveness.py).
            self.wait_for(lambda: self.backend.heartbeats(WORKER).complete,
                          "a TTL of heartbeats")
            # ... and the server has read them since (it writes its record,
            # then reads the workers').
            complete = time.time()
            self.wait_for(lambda: self.server_record()["beat"] > complete,
                          "the server's next heartbeat")
        except BaseException:
            self.cleanup()
            raise

    def logger(self, kind: str):
        return lambda line: self.logs.append((time.monotonic(), kind, line))

    def start_server(self) -> Process:
        """``runwsserver``, on the port of the one before if there was one."""
        self.server = Process(
            [sys.executable, "-m", "django", "runwsserver", f"127.0.0.1:{self.port}",
             "--no-access-log", *self.server_options], self.env, self.logger("server"))
        self.port = int(self.server.wait_for_line(SERVER_BANNER, timeout=60).group(1))
        return self.server

    def start_worker(self) -> Process:
        command = ([sys.executable, HOLDING_WORKER] if self.holding
                   else [sys.executable, "-m", "django", "runworker"])
        worker = Process(command, self.env, self.logger("worker"))
        worker.wait_for_line("listening on", timeout=60)
        self.workers.append(worker)
        return worker

    @staticmethod
    def wait_for(condition, what: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.1)

    def server_record(self) -> dict:
        """The running server's heartbeat record (waited for)."""
        pid = self.server.popen.pid
        records = []

        def found() -> bool:
            records[:] = [r for r in live(INTERFACE, self.backend) if r["pid"] == pid]
            return bool(records)

        self.wait_for(found, "the server's heartbeat")
        return records[0]

    def inbox_shard(self) -> int:
        """The shard of the running server's reply inbox: the one the
        token of its reply channels hashes to (its ``reply_token`` once its
        inbox has moved, else its ``id``: docs/heartbeats.rst)."""
        record = self.server_record()
        return shard_for(record.get("reply_token", record["id"]), len(self.hosts))

    def avoid_inbox_on(self, shard: int, attempts: int = 20) -> None:
        """Restart the server until its inbox is on another shard (its
        token is random; each start has a 1 - 1/N chance)."""
        for _ in range(attempts):
            if self.inbox_shard() != shard:
                return
            self.server.stop()
            self.start_server()
        raise RuntimeError(f"the server's inbox stayed on shard {shard}")

    def in_hand(self) -> dict[int, list[list[str]]]:
        """What each worker process holds, by pid, per its heartbeat."""
        return {record["pid"]: record["in_hand"] for record in live(WORKER, self.backend)}

    def busy_worker(self, seconds: float) -> Process:
        """The first worker seen holding messages for ``seconds`` on end:
        the load's short views leave a worker's hands at once, a long one
        does not."""
        since: dict[int, float] = {}
        found: list[int] = []

        def held_long() -> bool:
            now = time.monotonic()
            for pid, held in self.in_hand().items():
                if held:
                    since.setdefault(pid, now)
                else:
                    since.pop(pid, None)
            found[:] = [pid for pid, start in since.items() if now - start >= seconds]
            return bool(found)

        self.wait_for(held_long, "a worker holding a long request")
        return next(worker for worker in self.workers if worker.popen.pid == found[0])

    def kill(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait()

    def runs(self) -> collections.Counter:
        """How often the view ran for each request id."""
        try:
            with open(self.runs_file) as runs:
                return collections.Counter(int(line) for line in runs.read().split())
        except FileNotFoundError:
            return collections.Counter()

    def cleanup(self) -> None:
        for process in [self.server, *self.workers]:
            if process is not None:
                process.stop()
        self.backend.close()
        for server in self.redis:
            server.cleanup()
        if self.sentinel is not None:
            self.sentinel.cleanup()
        shutil.rmtree(self.directory, ignore_errors=True)
