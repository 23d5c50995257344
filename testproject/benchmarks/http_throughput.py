"""HTTP through the channel layer against plain gunicorn, in one run.

Measured with ``wrk`` (50 connections, 2 threads) on testproject's
``/hello/`` view (testproject/testproject/views.py), with everything on one
machine:

- baseline: ``gunicorn -w 2`` serving the view directly over WSGI (the limit
  without a channel layer);
- through the layer: an HTTP interface, a throwaway ``redis-server`` and ONE
  ``runworker`` process. The interface is ``runwsserver`` (the Twisted
  server) when this checkout has it, else gunicorn with the WSGI adapter
  (``channels.interfaces.wsgi``); ``--via`` chooses. Both are printed with
  the interface that was used.

Targets: the layer at least 40% of gunicorn's requests/s, p99 under 50 ms.

    python testproject/benchmarks/http_throughput.py [--duration 10] [--via server|wsgi|both]

Needs ``wrk`` (apt-get install wrk) and ``redis-server`` on PATH.
"""

import argparse
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
TESTPROJECT = os.path.dirname(HERE)
sys.path.insert(0, os.path.dirname(TESTPROJECT))

from channels.tests.processes import Process, django_env, start_gunicorn  # noqa: E402
from channels.tests.redis_servers import RedisServer  # noqa: E402

CONNECTIONS = 50
TARGET_SHARE = 0.40
TARGET_P99_MS = 50.0
UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, duration: int) -> dict:
    command = ["wrk", "-t2", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", url]
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


def measure(name, url, processes, duration):
    try:
        wait_ready(url)
        wrk(url, 2)  # warm-up: imports, connections, caches
        result = wrk(url, duration)
        result["name"] = name
        return result
    finally:
        for process in reversed(processes):
            process.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=10)
    has_server = importlib.util.find_spec("channels.management.commands.runwsserver")
    parser.add_argument("--via", choices=["server", "wsgi", "both"],
                        default="server" if has_server else "wsgi")
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH; install it (apt-get install {tool}).")

    redis = RedisServer().start()
    os.chdir(TESTPROJECT)
    common = {"DJANGO_DEBUG": "0", "CHANNELS_BACKEND": "redis",
              "REDIS_HOSTS": redis.url + "/0", "DJANGO_DB": ":memory:"}
    env = django_env("testproject.settings", TESTPROJECT, **common)
    results = []
    try:
        gunicorn, port = start_gunicorn("testproject.wsgi:application", env, "-w", "2")
        results.append(measure("gunicorn -w 2, plain WSGI (baseline)",
                               f"http://127.0.0.1:{port}/hello/", [gunicorn], args.duration))
        for via in (["server", "wsgi"] if args.via == "both" else [args.via]):
            redis.client().flushall()
            worker = Process([sys.executable, "-m", "django", "runworker"], env)
            worker.wait_for_line("listening on")
            if via == "server":
                interface = Process([sys.executable, "-m", "django", "runwsserver", "--port", "0"],
                                    env)
                port = int(interface.wait_for_line(r"listening on http://[^:]+:(\d+)/").group(1))
                name = "runwsserver + Redis + 1 runworker"
            else:
                interface, port = start_gunicorn(
                    "channels.interfaces.wsgi:application", env,
                    "-w", "1", "-k", "gthread", "--threads", str(CONNECTIONS))
                name = "gunicorn -w 1 --threads 50 + WSGI adapter + Redis + 1 runworker"
            results.append(measure(name, f"http://127.0.0.1:{port}/hello/",
                                   [worker, interface], args.duration))
    finally:
        redis.cleanup()

    baseline = results[0]
    print(f"HTTP /hello/ under wrk, {CONNECTIONS} connections, {args.duration} s, "
          f"{os.cpu_count()} CPUs, everything on this machine")
    print(f"{'setup':<66} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}")
    for result in results:
        print(f"{result['name']:<66} {result['rps']:>9.0f} {result['p50']:>8.2f} "
              f"{result['p99']:>8.2f} {result['errors']:>8}"
              + (f"  socket errors: {result['socket_errors']}" if result["socket_errors"]
                 else ""))
    print()
    for result in results[1:]:
        share = result["rps"] / baseline["rps"]
        print(f"{result['name']}: {share:.0%} of the baseline's req/s "
              f"(target >= {TARGET_SHARE:.0%}: {'met' if share >= TARGET_SHARE else 'MISSED'}), "
              f"p99 {result['p99']:.1f} ms (target < {TARGET_P99_MS:.0f} ms: "
              f"{'met' if result['p99'] < TARGET_P99_MS else 'MISSED'})")
    print(f"wrk command: {baseline['command']}")
    print(f"reproduce: python testproject/benchmarks/http_throughput.py "
          f"--duration {args.duration} --via {args.via}")
    print(json.dumps([{k: r[k] for k in ("name", "rps", "p50", "p99", "errors")}
                      for r in results]))


if __name__ == "__main__":
    main()
