"""Worker concurrency: ``runworker --threads`` and ``--processes`` against
their baselines, in one run.

Every layer setup is ``runwsserver`` + a throwaway ``redis-server`` (its own
database) + its workers, measured with ``wrk`` (64 connections) through the
interface server; the setups take turns in each round, and the medians of
the rounds are reported.

- ``/wait/?ms=20`` (testproject/testproject/views.py: sleeps as an I/O call
  would): one ``runworker --threads 16`` against ``--threads 1`` (target:
  at least 12 times the requests/s) and against plain ``gunicorn -w 1 -k
  gthread --threads 16`` serving the same view over WSGI (target: at least
  80%);
- ``/db/?ms=20`` (``pg_sleep`` on PostgreSQL at 127.0.0.1:5432, database
  ``test``, user ``postgres``): the same three, when PostgreSQL answers
  and psycopg is installed (else skipped, with a message);
- ``/hello/`` (CPU-bound): ``runworker --processes 2 --threads 1`` against
  two separate ``runworker`` processes (target: at least as many
  requests/s);
- memory: the RSS (and PSS, which counts shared pages once) of the one
  ``--threads 16`` process against the sum of 16 single-threaded
  ``runworker`` processes, each having served requests.

    python testproject/benchmarks/workers.py [--duration 3] [--rounds 2]

Runs are short by default (3 s); ``--duration 10`` for the 10 s runs of the
issue. Needs ``wrk`` (apt-get install wrk) and ``redis-server`` on PATH.
"""

import argparse
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TESTPROJECT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from http_throughput import run_rounds, wait_ready, wrk  # noqa: E402

from tests.support.processes import Process, django_env, start_gunicorn  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

CONNECTIONS = 64
THREADS = 16
TARGET_THREADS = 12.0  # --threads 16 against --threads 1
TARGET_GTHREAD = 0.80  # --threads 16 against gunicorn gthread
TARGET_PROCESSES = 1.0  # --processes 2 against two runworker processes
POSTGRES = {"DJANGO_POSTGRES_NAME": "test", "DJANGO_POSTGRES_HOST": "127.0.0.1",
            "DJANGO_POSTGRES_PORT": "5432", "DJANGO_POSTGRES_USER": "postgres"}


def postgres_missing() -> str | None:
    """Why the /db/ part cannot run, or None."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[tests]')"
    try:
        psycopg.connect("host=127.0.0.1 port=5432 dbname=test user=postgres",
                        connect_timeout=3).close()
    except psycopg.Error as exc:
        return f"PostgreSQL does not answer at 127.0.0.1:5432 ({str(exc).strip()})"
    return None


class Bench:
    """The processes of the run, each layer on its own Redis database."""

    def __init__(self, redis: RedisServer, postgres: bool):
        self.redis = redis
        self.postgres = postgres
        self.processes: list[Process] = []
        self.databases = 0

    def env(self, database: int | None = None) -> dict[str, str]:
        extra = {"CHANNELS_REDIS_HOSTS": self.redis.url_for(database)} if database else {}
        return django_env("testproject.settings", TESTPROJECT, DJANGO_DEBUG="0",
                          DJANGO_DB=":memory:", **(POSTGRES if self.postgres else {}), **extra)

    def start(self, args: list[str], env: dict[str, str], ready: str) -> Process:
        process = Process([sys.executable, "-m", "django", *args], env)
        self.processes.append(process)
        process.wait_for_line(ready, timeout=120)
        return process

    def layer(self, *worker_commands: list[str]) -> tuple[int, list[Process]]:
        """runwsserver and the given runworker commands on a new Redis
        database; returns the server's port and the workers."""
        self.databases += 1
        env = self.env(self.databases)
        workers = [self.start(["runworker", *command], env, "listening on")
                   for command in worker_commands]
        server = self.start(["runwsserver", "--port", "0", "--no-access-log"], env,
                            r"listening on http://[^:]+:\d+/")
        port = int(server.wait_for_line(r"listening on http://[^:]+:(\d+)/").group(1))
        return port, workers

    def gunicorn(self, *options: str) -> int:
        process, port = start_gunicorn("testproject.wsgi:application", self.env(), *options)
        self.processes.append(process)
        return port

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.stop(60)


def memory_kib(pid: int) -> tuple[int, int]:
    """RSS and PSS of ``pid`` in KiB."""
    fields = {}
    with open(f"/proc/{pid}/smaps_rollup") as rollup:
        for line in rollup:
            name, _, value = line.partition(":")
            if name in ("Rss", "Pss"):
                fields[name] = int(value.split()[0])
    return fields["Rss"], fields["Pss"]


def ratio_line(name: str, runs: dict, setup: str, baseline: str, target: float) -> str:
    ratios = [a["rps"] / b["rps"] for a, b in zip(runs[setup], runs[baseline], strict=True)]
    ratio = statistics.median(ratios)
    return (f"{name}: {ratio:.2f}x (rounds: {', '.join(format(r, '.2f') for r in ratios)}; "
            f"target >= {target:g}x: {'met' if ratio >= target else 'MISSED'})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run "
                        "(default: %(default)s; the issue's figure: 10)")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    for tool in ("wrk", "redis-server"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not on PATH; install it (apt-get install {tool}).")
    skip_postgres = postgres_missing()
    redis = RedisServer(unix_socket=True).start()
    os.chdir(TESTPROJECT)
    bench = Bench(redis, postgres=skip_postgres is None)
    lines = []
    try:
        threaded_port, [threaded] = bench.layer(["--threads", str(THREADS)])
        single_port, _ = bench.layer(["--threads", "1"])
        gthread_port = bench.gunicorn("-w", "1", "-k", "gthread", "--threads", str(THREADS))
        names = {"threads": f"runwsserver + runworker --threads {THREADS}",
                 "single": "runwsserver + runworker --threads 1",
                 "gthread": f"gunicorn -w 1 -k gthread --threads {THREADS} (plain WSGI)"}
        ports = {"threads": threaded_port, "single": single_port, "gthread": gthread_port}
        views = ["/wait/?ms=20"] + (["/db/?ms=20"] if skip_postgres is None else [])
        for view in views:
            setups = [(f"{view} {names[key]}", f"http://127.0.0.1:{ports[key]}{view}", {})
                      for key in ("threads", "single", "gthread")]
            runs = run_rounds(setups, args.rounds, args.duration, connections=CONNECTIONS)
            lines += table(runs)
            threads, single, gthread = (name for name, _, _ in setups)
            lines.append(ratio_line(f"{view} --threads {THREADS} against --threads 1", runs,
                                    threads, single, TARGET_THREADS))
            lines.append(ratio_line(f"{view} --threads {THREADS} against gunicorn gthread",
                                    runs, threads, gthread, TARGET_GTHREAD))
        if skip_postgres:
            lines.append(f"/db/?ms=20 skipped: {skip_postgres}")

        supervised_port, [supervisor] = bench.layer(["--processes", "2", "--threads", "1"])
        separate_port, _ = bench.layer([], [])
        setups = [("/hello/ runwsserver + runworker --processes 2 --threads 1",
                   f"http://127.0.0.1:{supervised_port}/hello/", {}),
                  ("/hello/ runwsserver + 2 separate runworker",
                   f"http://127.0.0.1:{separate_port}/hello/", {})]
        runs = run_rounds(setups, args.rounds, args.duration, connections=CONNECTIONS)
        lines += table(runs)
        lines.append(ratio_line("/hello/ --processes 2 against 2 runworker", runs,
                                setups[0][0], setups[1][0], TARGET_PROCESSES))

        # Memory, each worker having served requests.
        many_port, many = bench.layer(*([["--threads", "1"]] * THREADS))
        url = f"http://127.0.0.1:{many_port}/wait/?ms=20"
        wait_ready(url)
        wrk(url, 2, CONNECTIONS)
        rss, pss = memory_kib(threaded.popen.pid)
        sums = [sum(values) for values in zip(*(memory_kib(p.popen.pid) for p in many),
                                              strict=True)]
        lines.append(f"memory: one runworker --threads {THREADS}: RSS {rss / 1024:.0f} MiB, "
                     f"PSS {pss / 1024:.0f} MiB; {THREADS} runworker --threads 1 (sum): "
                     f"RSS {sums[0] / 1024:.0f} MiB, PSS {sums[1] / 1024:.0f} MiB "
                     f"({sums[0] / rss:.1f}x the RSS)")
    finally:
        bench.stop()
        redis.cleanup()
    print(f"\nwrk -t2 -c{CONNECTIONS} -d{args.duration}s, {args.rounds} rounds, setups "
          f"alternating; {os.cpu_count()} CPUs, everything on this machine, Redis over a "
          f"Unix socket")
    print("\n".join(lines))
    print(f"reproduce: python testproject/benchmarks/workers.py --duration {args.duration} "
          f"--rounds {args.rounds}")
    return 0


def table(runs: dict[str, list[dict]]) -> list[str]:
    lines = [f"{'setup (median of rounds)':<72} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} "
             f"{'non-2xx':>8}  req/s per round"]
    for name, results in runs.items():
        rps = statistics.median(r["rps"] for r in results)
        p50 = statistics.median(r["p50"] for r in results)
        p99 = statistics.median(r["p99"] for r in results)
        errors = sum(r["errors"] for r in results)
        per_round = ", ".join(format(r["rps"], ".0f") for r in results)
        lines.append(f"{name:<72} {rps:>8.0f} {p50:>8.2f} {p99:>8.2f} {errors:>8}  {per_round}")
    return lines


if __name__ == "__main__":
    sys.exit(main())
