"""The faults of the report (issue 15), each what an operator's bad day
does to the cluster of benchmarks/fault_cluster.py while the load runs,
with the bound it must keep and its own checks."""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass

from benchmarks.fault_cluster import Cluster
from benchmarks.fault_load import Load
from benchmarks.fault_table import Marks

# Seconds within which a client whose reply inbox died is answered (the
# inbox faults), and the absence of any worker is; a worker's death is
# answered within its HEARTBEAT_TTL (three heartbeats).
INBOX_BOUND = 2.0
NO_WORKER_BOUND = 5.0


@dataclass
class Timing:
    """How long things last: the full report, or ``--quick``."""

    quick: bool

    def down(self, full: float) -> float:
        """How long a part stays down: ``full`` seconds, or 2 in quick mode
        (8 for an outage meant to be long)."""
        if not self.quick:
            return full
        return 8.0 if full > 10 else 2.0

    @property
    def shutdown_timeout(self) -> float:
        return 2.0 if self.quick else 5.0

    @property
    def heartbeat(self) -> tuple[float, float]:
        """HEARTBEAT_INTERVAL and HEARTBEAT_TTL: the defaults, or short
        ones in quick mode (a cluster waits a TTL before its fault)."""
        return (1.0, 3.0) if self.quick else (5.0, 15.0)


@dataclass
class Fault:
    name: str
    title: str
    act: Callable[[Cluster, Load, Timing], Marks]
    # The longest wait allowed, for a Timing.
    wait_bound: Callable[[Timing], float | None] = lambda timing: None
    # The Cluster's options, for a Timing.
    cluster: Callable[[Timing], dict] = lambda timing: {}
    # Whether the bound is WebSocket messages' too, or requests' only.
    bound_websockets: bool = True

    def describe(self, timing: Timing) -> str:
        return self.title.format(down=timing.down(5), long=timing.down(20),
                                 timeout=timing.shutdown_timeout)


def outage(cluster: Cluster, shard: int, seconds: float, marks: Marks) -> Marks:
    """Kill -9 ``shard``'s redis-server, restart it empty ``seconds`` later."""
    marks.fault_at = time.monotonic()
    cluster.redis[shard].stop()
    time.sleep(seconds)  # the outage itself, not a synchronisation
    cluster.redis[shard].start()
    marks.repair_at = time.monotonic()
    return marks


def other_shard(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    inbox = cluster.inbox_shard()
    victim = (inbox + 1) % len(cluster.redis)
    marks = Marks(notes=[f"killed shard {victim}; the server's inbox is on shard {inbox}"])
    return outage(cluster, victim, timing.down(5), marks)


def inbox_shard(seconds: float) -> Callable[[Cluster, Load, Timing], Marks]:
    def act(cluster: Cluster, load: Load, timing: Timing) -> Marks:
        inbox = cluster.inbox_shard()
        marks = Marks(notes=[f"killed shard {inbox}, which holds the server's reply inbox"])
        return outage(cluster, inbox, timing.down(seconds), marks)

    return act


def inbox_stall(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    """The inbox's shard stops answering with its connections open (as a
    host cut off from the network does): SIGSTOP, then SIGCONT."""
    inbox = cluster.inbox_shard()
    process = cluster.redis[inbox].process
    marks = Marks(fault_at=time.monotonic(),
                  notes=[f"stopped shard {inbox} (SIGSTOP), which holds the server's reply "
                         f"inbox; its connections stay open"])
    process.send_signal(signal.SIGSTOP)
    time.sleep(timing.down(5))  # the outage itself
    process.send_signal(signal.SIGCONT)
    marks.repair_at = time.monotonic()
    return marks


def holding_worker(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    """Both workers paused (SIGSTOP) while a long request and eight short
    ones queue up behind the steady load, then resumed: the worker that
    takes the long one in a batch holds the rest of the batch, taken ahead,
    while it runs (holding workers, benchmarks/fault_cluster.py). That
    worker is killed -9; what it held is per its heartbeat."""
    for worker in cluster.workers:
        worker.popen.send_signal(signal.SIGSTOP)
    load.request("/slow/?seconds=60")
    for _ in range(8):
        load.request("/run/")
    time.sleep(0.5)  # a queue builds: the pause itself
    for worker in cluster.workers:
        worker.popen.send_signal(signal.SIGCONT)
    worker = cluster.busy_worker(1.0)
    held = len(cluster.in_hand()[worker.popen.pid])
    marks = Marks(fault_at=time.monotonic(),
                  notes=[f"killed a worker holding {held} message(s): the long request "
                         f"running, {held - 1} taken ahead; the other worker runs on"])
    cluster.kill(worker)
    return marks


def no_worker(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    """Both workers stopped (SIGTERM: as a deploy that forgot them), then
    started again."""
    marks = Marks(fault_at=time.monotonic(),
                  notes=[f"stopped both workers (SIGTERM), started them "
                         f"{timing.down(5):g} s later"])
    stopped = list(cluster.workers)
    for worker in stopped:
        worker.popen.send_signal(signal.SIGTERM)
    for worker in stopped:
        worker.stop(timeout=30)
    cluster.workers.clear()
    time.sleep(max(0.0, marks.fault_at + timing.down(5) - time.monotonic()))  # the outage
    marks.repair_at = time.monotonic()
    for _ in stopped:
        cluster.start_worker()
    return marks


def sentinel_master(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    old = cluster.sentinel.kill_master()
    marks = Marks(fault_at=time.monotonic())
    marks.promotion_at = marks.repair_at = cluster.sentinel.wait_for_new_master(old, 60)
    marks.notes.append(f"killed the master of shard 0 (Sentinel-managed; the server's inbox "
                       f"is on another shard); the sentinels announced the replica "
                       f"{marks.promotion_at - marks.fault_at:.1f} s later")
    return marks


def sigterm_server(cluster: Cluster, load: Load, timing: Timing) -> Marks:
    """SIGTERM to runwsserver while a request longer than its
    --shutdown-timeout runs; the server is started again once it exited."""
    timeout = timing.shutdown_timeout
    long = load.request(f"/slow/?seconds={timeout * 3:g}")
    cluster.busy_worker(0.5)
    server = cluster.server
    marks = Marks(fault_at=time.monotonic())
    server.popen.send_signal(signal.SIGTERM)
    code = server.popen.wait(timeout + 30)
    exited = time.monotonic() - marks.fault_at
    stop_lines = [line for moment, kind, line in cluster.logs
                  if kind == "server" and moment >= marks.fault_at]
    marks.repair_at = time.monotonic()  # the restart begins
    cluster.start_server()
    closes = {sock.code for sock in load.sockets
              if sock.code is not None and sock.closed >= marks.fault_at}
    waited = None if long.done is None else long.done - marks.fault_at
    marks.notes.append(f"SIGTERM with --shutdown-timeout {timeout:g} and a "
                       f"{timeout * 3:g} s request running; exit code {code} after "
                       f"{exited:.1f} s; started again")
    marks.checks += [
        (f"the long request answered {long.status}, Connection: "
         f"{long.headers.get('connection')}, "
         f"{'never' if waited is None else f'{waited:.1f} s'} after the signal "
         f"(503, close, at {timeout:g} s)",
         long.status == 503 and long.headers.get("connection") == "close"
         and waited is not None and timeout - 0.2 <= waited <= timeout + 2),
        (f"sockets closed {sorted(map(str, closes))} (1001)", closes == {1001}),
        (f"a clean exit (code {code}), no error logged while stopping",
         code == 0 and not [line for line in stop_lines
                            if re.search(r"ERROR|CRITICAL|Traceback|unreachable", line)]),
    ]
    return marks


FAULTS = [
    Fault("shard", "kill -9 a shard that holds no reply inbox, {down:g} s down, restart",
          other_shard),
    Fault("inbox", "kill -9 the shard holding runwsserver's reply inbox, {down:g} s down, "
          "restart", inbox_shard(5), wait_bound=lambda timing: INBOX_BOUND),
    Fault("inbox-long", "the same, {long:g} s down", inbox_shard(20),
          wait_bound=lambda timing: INBOX_BOUND),
    Fault("inbox-stall", "SIGSTOP the shard holding the reply inbox for {down:g} s, then "
          "SIGCONT", inbox_stall, wait_bound=lambda timing: INBOX_BOUND),
    Fault("worker", "kill -9 a worker holding prefetched messages", holding_worker,
          wait_bound=lambda timing: timing.heartbeat[1],
          cluster=lambda timing: {"holding": True}),
    # Messages on open sockets wait in websocket.receive for a worker.
    Fault("no-worker", "no worker at all for {down:g} s", no_worker,
          wait_bound=lambda timing: NO_WORKER_BOUND, bound_websockets=False),
    Fault("sentinel", "kill -9 a Sentinel-managed shard's master (a replica, 3 sentinels, "
          "down-after-milliseconds 1000)", sentinel_master,
          cluster=lambda timing: {"sentinel": True}),
    Fault("sigterm", "SIGTERM to runwsserver with a long request in flight, "
          "--shutdown-timeout {timeout:g}", sigterm_server,
          cluster=lambda timing: {"server_options": (
              "--shutdown-timeout", f"{timing.shutdown_timeout:g}")}),
]
