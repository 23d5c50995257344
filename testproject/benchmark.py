#!/usr/bin/env python
"""The project's benchmarks, one after another, each next to its baseline.

Each benchmark is a script in ``testproject/benchmarks/`` that starts what it
needs (throwaway Redis servers, interface servers, workers), measures the
baseline in the same run (raw redis-py, a plain Autobahn echo server, plain
gunicorn), and prints every figure with its target and the command that
reproduces it. This driver runs them in separate processes, so one's
servers and threads cannot slow the next, and says which failed.

    python testproject/benchmark.py                 # all of them
    python testproject/benchmark.py redis websocket # some of them
    python testproject/benchmark.py workers --duration 10  # options go to each script
    python testproject/benchmark.py idle --sockets 18000 --hold 120
    python testproject/benchmark.py faults --only inbox --quick
"""

from __future__ import annotations

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

BENCHMARKS = {
    "redis": "redis_layer.py",
    "http": "http_throughput.py",
    "websocket": "websocket.py",
    "linearize": "linearize.py",
    "static": "static_files.py",
    "metrics": "metrics_overhead.py",
    "fairness": "fairness.py",
    "presence": "presence.py",
    "idle": "idle.py",
    "workers": "workers.py",
    "faults": "faults.py",
}


def main(argv: list[str]) -> int:
    first_option = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    argv, options = argv[:first_option], argv[first_option:]
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}",
              file=sys.stderr)
        return 2
    failed = []
    for name in names:
        script = os.path.join(HERE, "benchmarks", BENCHMARKS[name])
        print(f"\n=== {name}: python {os.path.relpath(script)}", flush=True)
        if subprocess.call([sys.executable, script, *options]) != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
