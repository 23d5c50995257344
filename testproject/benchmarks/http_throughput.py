"""HTTP through the channel layer against plain gunicorn, in one run.

Measured with ``wrk`` (50 connections, 2 threads) on testproject's
``/hello/`` view (testproject/testproject/views.py), with everything on one
machine:

- baseline: ``gunicorn -w 2`` serving the view directly over WSGI (the limit
  without a channel layer);
- through the layer: an HTTP interface, a throwaway ``redis-server`` and ONE
  ``runworker`` process. The interface is ``runwsserver`` (the Twisted
  server) when this checkout has it, else gunicorn with the WSGI adapter
  (``channels.interfaces.wsgi``); ``--via`` chooses, ``both`` measures both
  (each layer with its own Redis database and its own one worker);
- ``runwsserver`` with TWO ``runworker`` processes as well (``--workers``):
  as a deployment on two cores would run it, one worker per core, where
  gunicorn runs two processes. One worker cannot use a core to itself, as
  it waits for Redis between its requests.

Targets (issue 19): the layer at least 85% of gunicorn's requests/s, with a
p99 at most twice gunicorn's in the same run.

    python testproject/benchmarks/http_throughput.py [--duration 10] [--rounds 3]
                                                     [--via server|wsgi|both] [--prefetch N]
                                                     [--workers 1 2]
                                                     [--redis unix|tcp] [--access-log-cost]
                                                     [--metrics-cost]

``runwsserver`` writes its access log (on by default) to a pipe this script
reads, as under a process manager; ``--access-log-cost`` adds a second
``runwsserver`` setup with ``--no-access-log``, in the same rounds, to show
what the log costs. ``--metrics-cost`` likewise adds a ``runwsserver`` and
``runworker`` pair with ``--metrics`` (Prometheus metrics on, scraped once a
round), to show what the metrics cost.

Redis is reached through its Unix socket, as a Redis on the same machine
should be (docs/deploying.rst); ``--redis tcp`` measures loopback TCP.

The setups take turns in several rounds and the medians are reported: on a
shared machine, load from elsewhere then falls on every setup alike.

Needs ``wrk`` (apt-get install wrk) and ``redis-server`` on PATH.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTPROJECT = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(TESTPROJECT))

from channels.worker import PREFETCH  # noqa: E402
from tests.support.processes import Process, django_env, start_gunicorn  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402
from tests.support.server_process import free_port  # noqa: E402

CONNECTIONS = 50
TARGET_SHARE = 0.85
# The layer's p99 at most this many times the baseline's.
TARGET_P99_RATIO = 2.0
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, duration: int, connections: int = CONNECTIONS) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    result = {"command": " ".join(command)}
    result["rps"] = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    for percentile in ("50", "99"):
        value, unit = re.search(rf"\s{percentile}%\s+([\d.]+)(us|ms|s)\b", output).groups()
        result[f"p{percentile}"] = float(value) * UNITS_MS[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    result["errors"] = (int(errors.group(1)) if errors else 0)
    result["socket_errors"] = socket_errors.group(1) if socket_errors else ""
    return result


def cpu_seconds(pids: list[int] | int) -> float:
    """User + system CPU time so far of ``pids`` and their children's
    threads (gunicorn's workers are its children)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in [pids] if isinstance(pids, int) else pids:
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True,
                                  text=True).stdout.split()
        for each in [pid, *map(int, children)]:
            try:
                with open(f"/proc/{each}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def wait_ready(url: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def run_rounds(setups: list[tuple[str, str, dict[str, int | list[int]]]], rounds: int,
               duration: int, each_round=None,
               connections: int = CONNECTIONS) -> dict[str, list[dict]]:
    """wrk against each ``(name, url, {role: pid or pids})`` in turn, ``rounds``
    times: rounds alternate the setups, so that load from elsewhere on the
    machine falls on all of them alike, every other round in the reverse
    order, so that none always follows the same one. Each result has the
    CPU milliseconds per request of each role (``cpu``) and their sum
    (``cpu_ms``)."""
    for _, url, _ in setups:
        wait_ready(url)
        wrk(url, 2, connections)  # warm-up: imports, connections, caches
    runs: dict[str, list[dict]] = {}
    for number in range(rounds):
        for name, url, roles in (setups if number % 2 == 0 else setups[::-1]):
            before = {role: cpu_seconds(pids) for role, pids in roles.items()}
            result = wrk(url, duration, connections)
            requests = max(result["rps"] * duration, 1)
            result["cpu"] = {role: (cpu_seconds(pids) - before[role]) / requests * 1000
                             for role, pids in roles.items()}
            result["cpu_ms"] = sum(result["cpu"].values())
            runs.setdefault(name, []).append(result)
        if each_round is not None:
            each_round()
    return runs


def medians_of(results: list[dict]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in results)
            for key in ("rps", "p50", "p99", "cpu_ms")}


def start_layer(via: str, env: dict, prefetch: int,
                workers: int = 1) -> tuple[str, int, list[Process]]:
    """``workers`` runworker processes and the interface ``via``
    (``server-nolog``: runwsserver --no-access-log; ``server-metrics``: both
    with --metrics); returns name, port, processes (the interface last)."""
    metrics = via == "server-metrics"
    started = []
    for _ in range(workers):
        worker = Process([sys.executable, "-m", "django", "runworker", "--prefetch",
                          str(prefetch), *metrics_option(metrics)], env)
        worker.wait_for_line("listening on")
        started.append(worker)
    if via.startswith("server"):
        quiet = via == "server-nolog"
        interface = Process([sys.executable, "-m", "django", "runwsserver", "--port", "0",
                             *(["--no-access-log"] if quiet else []), *metrics_option(metrics)],
                            env)
        port = int(interface.wait_for_line(r"listening on http://[^:]+:(\d+)/").group(1))
        log = "--no-access-log" if quiet else "access log on"
        if metrics:
            log += ", --metrics"
        return (f"runwsserver ({log}) + Redis + {workers} runworker{'s' * (workers > 1)}", port,
                [*started, interface])
    interface, port = start_gunicorn("channels.interfaces.wsgi:application", env,
                                     "-w", "1", "-k", "gthread", "--threads", str(CONNECTIONS))
    return ("gunicorn -w 1 --threads 50 + WSGI adapter + Redis + 1 runworker", port,
            [*started, interface])


def metrics_option(on: bool) -> list[str]:
    """``--metrics`` on a free port, which the process prints."""
    return ["--metrics", f"127.0.0.1:{free_port()}"] if on else []


def scrape_metrics(processes: list[Process]) -> None:
    """Read each process's /metrics page once, as Prometheus would."""
    for process in processes:
        for line in process.lines:
            match = re.search(r"Metrics at (http://\S+)", line)
            if match:
                with urllib.request.urlopen(match.group(1), timeout=10) as page:
                    page.read()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--prefetch", type=int, default=PREFETCH,
                        help="the worker's --prefetch (default: %(default)s)")
    has_server = importlib.util.find_spec("channels.management.commands.runwsserver")
    parser.add_argument("--via", choices=["server", "wsgi", "both"],
                        default="both" if has_server else "wsgi")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                        help="runwsserver setups with this many runworker processes "
                             "(default: %(default)s)")
    parser.add_argument("--redis", choices=["unix", "tcp"], default="unix",
                        help="how the layer reaches Redis (default: %(default)s)")
    parser.add_argument("--access-log-cost", action="store_true",
                        help="also runwsserver --no-access-log, to compare")
    parser.add_argument("--metrics-cost", action="store_true",
                        help="also runwsserver and runworker --metrics, to compare")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH; install it (apt-get install {tool}).")

    redis = RedisServer(unix_socket=args.redis == "unix").start()
    os.chdir(TESTPROJECT)
    processes: list[Process] = []
    setups = []  # (name, url, {role: pid whose CPU time counts})
    runs: dict[str, list[dict]] = {}
    try:
        env = django_env("testproject.settings", TESTPROJECT, DJANGO_DEBUG="0",
                         DJANGO_DB=":memory:")
        gunicorn, port = start_gunicorn("testproject.wsgi:application", env, "-w", "2")
        processes.append(gunicorn)
        setups.append(("gunicorn -w 2, plain WSGI (baseline)", f"http://127.0.0.1:{port}/hello/",
                       {"gunicorn": gunicorn.popen.pid}))
        vias: list[tuple[str, int]] = [
            *(("server", workers) for workers in args.workers if args.via != "wsgi"),
            *([("wsgi", 1)] if args.via != "server" else [])]
        first = args.workers[0]
        if args.access_log_cost and ("server", first) in vias:
            vias.insert(vias.index(("server", first)) + 1, ("server-nolog", first))
        if args.metrics_cost and ("server", first) in vias:
            vias.insert(vias.index(("server", first)) + 1, ("server-metrics", first))
        for database, (via, workers) in enumerate(vias):
            # Each layer on its own Redis database, so its one worker serves it alone.
            env = django_env("testproject.settings", TESTPROJECT, DJANGO_DEBUG="0",
                             DJANGO_DB=":memory:",
                             CHANNELS_REDIS_HOSTS=redis.url_for(database))
            name, port, started = start_layer(via, env, args.prefetch, workers)
            processes.extend(started)
            *worker_processes, interface = started
            setups.append((name, f"http://127.0.0.1:{port}/hello/",
                           {"interface": interface.popen.pid,
                            "worker": [worker.popen.pid for worker in worker_processes],
                            "redis": redis.process.pid}))
        runs = run_rounds(setups, args.rounds, args.duration,
                          lambda: scrape_metrics(processes))
    finally:
        for process in reversed(processes):
            process.stop()
        redis.cleanup()

    baseline_name = setups[0][0]
    print(f"HTTP /hello/ under wrk, {CONNECTIONS} connections, {args.rounds} rounds of "
          f"{args.duration} s per setup, alternating; {os.cpu_count()} CPUs, everything "
          f"on this machine, Redis over {args.redis}")
    print(f"{'setup (median of rounds)':<66} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
          f"{'CPU ms/req':>10} {'non-2xx':>8}  req/s per round")
    medians = {}
    for name, results in runs.items():
        medians[name] = median = medians_of(results)
        errors = sum(r["errors"] for r in results)
        per_round = ", ".join(format(r["rps"], ".0f") for r in results)
        by_role = ", ".join(
            f"{role} {statistics.median(r['cpu'][role] for r in results):.2f}"
            for role in results[0]["cpu"])
        print(f"{name:<66} {median['rps']:>8.0f} {median['p50']:>8.2f} {median['p99']:>8.2f} "
              f"{median['cpu_ms']:>10.2f} {errors:>8}  {per_round}")
        print(f"{'':<4}CPU ms per request by process: {by_role}")
    print("CPU ms/req: CPU time of the setup's own processes (and Redis for the layers) "
          "per request served, all workers' together; wrk's is not counted.")
    print()
    for name in list(runs)[1:]:
        shares = [layer["rps"] / base["rps"]
                  for layer, base in zip(runs[name], runs[baseline_name], strict=True)]
        share, p99 = statistics.median(shares), medians[name]["p99"]
        ratio = p99 / medians[baseline_name]["p99"]
        print(f"{name}: {share:.0%} of the baseline's req/s (median of rounds; target >= "
              f"{TARGET_SHARE:.0%}: {'met' if share >= TARGET_SHARE else 'MISSED'}), p99 "
              f"{p99:.1f} ms, {ratio:.1f}x the baseline's (target <= {TARGET_P99_RATIO:g}x: "
              f"{'met' if ratio <= TARGET_P99_RATIO else 'MISSED'})")
    logged = [name for name in runs if "access log on" in name and "--metrics" not in name]
    quiet = [name for name in runs if "--no-access-log" in name]
    if logged and quiet:
        on, off = runs[logged[0]], runs[quiet[0]]
        ratios = [a["rps"] / b["rps"] for a, b in zip(on, off, strict=True)]
        cpu = [a["cpu"]["interface"] / b["cpu"]["interface"]
               for a, b in zip(on, off, strict=True)]
        print(f"The access log: {statistics.median(ratios):.0%} of the req/s without it, "
              f"{statistics.median(cpu):.0%} of its interface CPU per request (medians of "
              f"the rounds' ratios; rounds: {', '.join(format(r, '.2f') for r in ratios)})")
    measured = [name for name in runs if "--metrics" in name]
    plain = [name for name in runs if "access log on)" in name]
    if measured and plain:
        on, off = runs[measured[0]], runs[plain[0]]
        ratios = [a["rps"] / b["rps"] for a, b in zip(on, off, strict=True)]
        cpu = [(a["cpu"]["interface"] + a["cpu"]["worker"])
               / (b["cpu"]["interface"] + b["cpu"]["worker"]) for a, b in zip(on, off, strict=True)]
        # Redis does the same work either way: how much the machine alone moved the figures.
        control = [a["cpu"]["redis"] / b["cpu"]["redis"] for a, b in zip(on, off, strict=True)]
        # The geometric mean: the rounds take turns at going first, and
        # whichever goes second is slowed alike, which this cancels.
        share = statistics.geometric_mean(ratios)
        print(f"Metrics on: {share:.1%} of the req/s with them off (target >= 95%: "
              f"{'met' if share >= 0.95 else 'MISSED'}); interface and worker CPU per request "
              f"{statistics.geometric_mean(cpu):.1%} of theirs without, Redis's (the control, "
              f"which metrics do not touch) {statistics.geometric_mean(control):.1%}; geometric "
              f"means of the rounds' ratios (req/s: {', '.join(format(r, '.3f') for r in ratios)};"
              f" CPU: {', '.join(format(r, '.3f') for r in cpu)})")
    print(f"At {CONNECTIONS} connections a closed loop keeps, the mean latency is "
          f"{CONNECTIONS} / (req/s).")
    print(f"wrk command: {runs[baseline_name][0]['command']}")
    print(f"reproduce: python testproject/benchmarks/http_throughput.py --duration "
          f"{args.duration} --rounds {args.rounds} --via {args.via} --prefetch {args.prefetch}"
          f" --workers {' '.join(map(str, args.workers))}"
          + (" --access-log-cost" if args.access_log_cost else "")
          + (" --metrics-cost" if args.metrics_cost else ""))
    print(json.dumps({name: medians[name] for name in runs}))


if __name__ == "__main__":
    main()
