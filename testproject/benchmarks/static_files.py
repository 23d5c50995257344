"""A 300 KB static file in production shape, served two ways, in one run:

- by the interface server itself: ``runwsserver`` answers from
  STATIC_ROOT (channels.interfaces.static_files), no channel layer involved;
- through the layer: ``runwsserver --no-static`` sends the request through
  Redis to ONE ``runworker``, where WhiteNoise's middleware answers it in
  Django's handler, and the 300 KB come back through Redis.

Both after ``collectstatic``, with DEBUG off and the access log off, on one
throwaway ``redis-server``; measured with ``wrk`` (50 connections, 2
threads), the setups alternating in rounds, medians reported. These
figures chose the interface server (docs/benchmarks.rst).

    python testproject/benchmarks/static_files.py [--duration 10] [--rounds 3]

Needs ``wrk`` (apt-get install wrk) and ``redis-server`` on PATH.
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
TESTPROJECT = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(TESTPROJECT))
sys.path.insert(0, HERE)

from http_throughput import CONNECTIONS, medians_of, run_rounds  # noqa: E402

from tests.support.processes import Process, django_env  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

SIZE = 300 * 1024
PATH = "/static/bench/300k.js"
SETUPS = {
    "server": "runwsserver answers it from STATIC_ROOT",
    "worker": "through Redis to 1 runworker, WhiteNoise middleware",
}


def start(via: str, env: dict) -> tuple[int, dict[str, int], list[Process]]:
    """The setup ``via``: its port, the pids whose CPU counts, its processes."""
    env = dict(env, BENCH_STATIC_VIA=via)
    command = [sys.executable, "-m", "django"]
    interface = Process([*command, "runwsserver", "--port", "0", "--no-access-log",
                         *(["--no-static"] if via == "worker" else [])], env)
    port = int(interface.wait_for_line(r"listening on http://[^:]+:(\d+)/").group(1))
    processes, pids = [interface], {"interface": interface.popen.pid}
    if via == "worker":
        worker = Process([*command, "runworker"], env)
        worker.wait_for_line("listening on")
        processes.append(worker)
        pids["worker"] = worker.popen.pid
    return port, pids, processes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH; install it (apt-get install {tool}).")

    tmp = tempfile.mkdtemp(prefix="channels-static-bench-")
    source = os.path.join(tmp, "source", "bench")
    os.makedirs(source)
    with open(os.path.join(source, "300k.js"), "wb") as f:
        f.write((b"var x = 1;\n" * (SIZE // 11 + 1))[:SIZE])
    redis = RedisServer(unix_socket=True).start()
    processes: list[Process] = []
    setups = []  # (name, url, {role: pid whose CPU time counts})
    runs: dict[str, list[dict]] = {}
    try:
        for database, via in enumerate(SETUPS):
            env = django_env("benchmarks.static_settings", TESTPROJECT, DJANGO_DB=":memory:",
                             CHANNELS_REDIS_HOSTS=redis.url_for(database),
                             BENCH_STATIC_ROOT=os.path.join(tmp, "root"),
                             BENCH_STATIC_DIR=os.path.dirname(source))
            if database == 0:
                subprocess.run([sys.executable, "-m", "django", "collectstatic", "--noinput"],
                               env=env, check=True, capture_output=True)
            port, pids, started = start(via, env)
            processes.extend(started)
            if via == "worker":
                pids["redis"] = redis.process.pid
            setups.append((SETUPS[via], f"http://127.0.0.1:{port}{PATH}", pids))
        runs = run_rounds(setups, args.rounds, args.duration)
    finally:
        for process in reversed(processes):
            process.stop()
        redis.cleanup()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"GET of a {SIZE // 1024} KB static file under wrk, {CONNECTIONS} connections, "
          f"{args.rounds} rounds of {args.duration} s per setup, alternating; "
          f"{os.cpu_count()} CPUs, everything on this machine, DEBUG off, after collectstatic")
    print(f"{'setup (median of rounds)':<58} {'req/s':>8} {'MB/s':>7} {'p50 ms':>8} "
          f"{'p99 ms':>8} {'CPU ms/req':>10} {'non-2xx':>8}  req/s per round")
    medians = {}
    for name, results in runs.items():
        medians[name] = median = medians_of(results)
        per_round = ", ".join(format(r["rps"], ".0f") for r in results)
        print(f"{name:<58} {median['rps']:>8.0f} {median['rps'] * SIZE / 1e6:>7.0f} "
              f"{median['p50']:>8.2f} {median['p99']:>8.2f} {median['cpu_ms']:>10.2f} "
              f"{sum(r['errors'] for r in results):>8}  {per_round}")
    served, through = (SETUPS[via] for via in SETUPS)
    ratios = [a["rps"] / b["rps"] for a, b in zip(runs[served], runs[through], strict=True)]
    print(f"\nThe interface server answers {statistics.median(ratios):.1f}x the requests per "
          f"second of the trip through the layer (median of rounds' ratios), at "
          f"{medians[served]['p99']:.1f} ms p99 against {medians[through]['p99']:.1f} ms.")
    print("CPU ms/req: CPU time of the setup's own processes (and Redis for the layer) per "
          "request; wrk's is not counted.")
    print(f"reproduce: python testproject/benchmarks/static_files.py --duration {args.duration} "
          f"--rounds {args.rounds}")
    print(json.dumps(medians))


if __name__ == "__main__":
    main()
