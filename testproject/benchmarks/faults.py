"""The fault report: what each failure of a part costs, under load.

For each fault (benchmarks/fault_scenarios.py) a fresh cluster of real
processes (three Redis shards, one ``runwsserver``, two ``runworker``:
benchmarks/fault_cluster.py) serves steady HTTP and WebSocket load
(benchmarks/fault_load.py) while the fault happens; the load goes on until
service has been full for a while, then every request is waited for. Per
fault it prints requests sent, answered by status and unanswered;
WebSocket messages sent, echoed, lost and duplicated; sockets closed by
code; seconds until full service; whether the bounds hold (nothing
duplicated, ever; nothing unanswered past the fault's bound); and what the
processes logged meanwhile. Then one table of all faults
(docs/benchmarks.rst).

    python testproject/benchmark.py faults [--only NAME ...] [--quick]

The exit status is 1 if a bound did not hold.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(PROJECT)
sys.path[:0] = [REPO, PROJECT]
# Settings for this process's own look at the cluster (heartbeats).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.fault_settings")
os.environ.setdefault("CHANNELS_REDIS_HOSTS", "redis://127.0.0.1:1")

import django  # noqa: E402

django.setup()
# This process only reads heartbeats: what it would log about the outages
# is not what the cluster's processes log, which the report shows.
logging.getLogger("channels").setLevel(logging.CRITICAL)

from benchmarks.fault_cluster import Cluster  # noqa: E402
from benchmarks.fault_load import Load  # noqa: E402
from benchmarks.fault_scenarios import FAULTS, Fault, Timing  # noqa: E402
from benchmarks.fault_table import Marks, Outcome, measure, report, summary_table  # noqa: E402

# Seconds of load before the fault, of full service wanted after it, and
# at most after the fault (or its repair) before the load stops anyway.
WARMUP = {False: 3.0, True: 1.5}
SETTLE = {False: 5.0, True: 2.0}
LONGEST = 60.0
# Requests a second; WebSockets, and messages a second on each.
LOAD = {False: (40, 20, 5), True: (20, 6, 4)}
# A request still unanswered this long counts as failing while watching.
PATIENCE = 1.0


def serving_since(load: Load, now: float) -> float | None:
    """Since when everything has gone well, per the records so far (a
    request or message pending for over PATIENCE counts as failing);
    None if nothing went well since the last failure."""
    bad, good = [], []
    for request in list(load.requests):
        if request.status is None:
            if now - request.sent > PATIENCE:
                bad.append(request.sent)
        else:
            (good if request.status == 200 else bad).append(request.sent)
    closed = {sock.id for sock in list(load.sockets) if sock.closed is not None}
    for message in list(load.messages.values()):
        if message.echoes:
            (good if len(message.echoes) == 1 else bad).append(message.sent)
        elif message.socket in closed or now - message.sent > PATIENCE:
            bad.append(message.sent)
    bad += [sock.closed for sock in list(load.sockets) if sock.code is not None]
    bad += [h.at for h in list(load.handshakes) if h.status != 101]
    last_bad = max(bad, default=0.0)
    after = [moment for moment in good if moment > last_bad]
    return min(after) if after else None


def watch(load: Load, marks: Marks, settle: float) -> None:
    """Keep the load on until service has been full for ``settle``
    seconds since the fault's repair, or for LONGEST seconds."""
    begin = marks.repair_at or marks.fault_at
    while time.monotonic() < begin + LONGEST:
        now = time.monotonic()
        since = serving_since(load, now)
        if since is not None and now - max(since, begin) >= settle:
            return
        time.sleep(0.25)


def run(fault: Fault, timing: Timing) -> Outcome:
    title = fault.describe(timing)
    print(f"\n{fault.name}: {title} ...", flush=True)
    cluster = Cluster(timing.heartbeat, **fault.cluster(timing))
    try:
        http_rate, sockets, ws_rate = LOAD[timing.quick]
        load = Load(cluster.port, http_rate, sockets, ws_rate).start()
        time.sleep(WARMUP[timing.quick])  # steady load before the fault
        marks = fault.act(cluster, load, timing)
        watch(load, marks, SETTLE[timing.quick])
        load.stop()
        return measure(fault.name, title, load, cluster.runs(), marks, cluster.logs,
                       fault.wait_bound(timing), fault.bound_websockets)
    finally:
        cluster.cleanup()


def main(argv: list[str] | None = None) -> int:
    names = [fault.name for fault in FAULTS]
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=names, metavar="NAME",
                        help=f"run only these faults, of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true",
                        help="shorter outages and lighter load (a smoke run, not figures)")
    options = parser.parse_args(argv)
    timing = Timing(options.quick)
    chosen = [fault for fault in FAULTS if not options.only or fault.name in options.only]
    command = " ".join(["python testproject/benchmark.py faults", *(argv or sys.argv[1:])])
    http_rate, sockets, ws_rate = LOAD[timing.quick]
    print(f"command: {command}\nmachine: {os.cpu_count()} cores, everything on it; load: "
          f"{http_rate} HTTP requests/s (each on its own connection), {sockets} WebSockets "
          f"sending {ws_rate} messages/s each; HEARTBEAT_INTERVAL {timing.heartbeat[0]:g}, "
          f"HEARTBEAT_TTL {timing.heartbeat[1]:g}")
    outcomes = []
    for fault in chosen:
        outcome = run(fault, timing)
        print(report(outcome), flush=True)
        outcomes.append(outcome)
    print(f"\nall faults ({command}):")
    print(summary_table(outcomes))
    failed = [outcome.name for outcome in outcomes if not outcome.holds]
    print(f"bounds {'FAILED: ' + ', '.join(failed) if failed else 'hold for every fault'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
