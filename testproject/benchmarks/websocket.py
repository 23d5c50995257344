"""WebSocket through the channel layer, next to plain Autobahn, in one run.

Starts a throwaway redis-server, ``runwsserver`` and ``runworker``
process(es) on testproject (Redis backend), and a plain Autobahn/Twisted
echo server as the baseline, then measures:

- echo round trip through the layer with 50 clients, each keeping one
  message in flight: p50/p99 and messages/s (target: at least 40% of the
  plain server's messages/s, p50 under 15 ms), the CPU time each process
  (this client included) spends per message, where the time goes, and the
  cores they kept busy: near all of them, the run was CPU-bound, and only
  less CPU per message raises the rate; fewer, something waited;
- a group message to 500 sockets (``--group``), until all have received
  it (targets: 40 ms at 500, and at 10,000 within 1.5 times the baseline,
  the plain server writing to as many sockets);
- server memory per idle WebSocket with 10,000 open (target: at most
  20 KiB; baseline: the plain server). benchmarks/idle.py measures idle
  sockets further: their CPU, and echo and broadcast after a long idle.

    python testproject/benchmarks/websocket.py [--workers N ...] [--prefetch N] [--seconds S]
                                               [--idle N] [--redis unix|tcp] [--metrics-cost]

``--workers 1 2`` measures a ``runwsserver`` with one ``runworker`` and
another with two, on Redis databases of their own, in the same alternating
rounds (the setups not being measured are stopped with SIGSTOP); the
broadcast and memory figures use the first. On two cores one worker
process echoes faster: the interface server needs most of a core, and a
second worker only competes for the other. Each count run alone
(``--workers 1``, the default, then ``--workers 2``) makes a few percent
more of plain's rate than side by side, for reasons not found
(docs/benchmarks.rst, "Consumer sends held").

``--metrics-cost`` adds a second ``runwsserver`` and workers with
``--metrics`` (Prometheus metrics on, on a Redis database of their own) as a
third echo target in the same alternating rounds, and says what the metrics
cost: their messages/s beside the first setup's, round by round.

Redis is reached through its Unix socket, as a Redis on the same machine
should be (docs/deploying.rst); ``--redis tcp`` measures loopback TCP.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(PROJECT)
sys.path[:0] = [REPO, PROJECT]

from benchmarks import websocket_client as client  # noqa: E402
from channels.worker import PREFETCH  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

PYTHON = sys.executable


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        return int(re.search(r"VmRSS:\s+(\d+)", status.read()).group(1))


def layer_environment(redis_server: RedisServer, settings_module: str) -> dict:
    """The environment of the processes a benchmark starts on one Redis
    server; this process takes the same backend and settings, to read it."""
    env = dict(os.environ, CHANNELS_REDIS_HOSTS=redis_server.url_for(0),
               DJANGO_SETTINGS_MODULE=settings_module,
               PYTHONPATH=os.pathsep.join([REPO, PROJECT]))
    os.environ.update(CHANNELS_REDIS_HOSTS=env["CHANNELS_REDIS_HOSTS"],
                      DJANGO_SETTINGS_MODULE=env["DJANGO_SETTINGS_MODULE"])
    return env


def start(args: list[str], env: dict, pattern: str) -> tuple[subprocess.Popen, str]:
    """Start a process and wait for a line matching ``pattern``."""
    process = subprocess.Popen(args, cwd=PROJECT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        match = re.search(pattern, line)
        if match:
            # Keep reading, so that a chatty process never blocks on its pipe.
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, match.group(1)
    process.kill()
    raise RuntimeError(f"{args} did not start: {line!r}")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def echo(targets: dict[str, tuple[int, str, dict[str, list[int]]]], clients: int,
         seconds: float, rounds: int = 5,
         own: dict[str, list[int]] | None = None) -> dict[str, dict]:
    """Echo load on each target in turn, ``rounds`` times, so that whatever
    else the machine does falls on both alike. Each target names the
    processes whose CPU time per message is reported (where the time goes).
    The processes each target has to itself (``own``) are stopped
    (SIGSTOP) while another is measured: idle, a second setup's server and
    workers still cost the one measured a few percent of its rate."""
    own = own or {}
    sockets = {name: client.open_sockets(port, path, clients)
               for name, (port, path, _) in targets.items()}
    latencies = {name: [] for name in targets}
    # Per round: (messages/s, {part: CPU ms per message}).
    per_round = {name: [] for name in targets}
    durations = dict.fromkeys(targets, 0.0)
    cpu = {name: dict.fromkeys(parts, 0.0) for name, (_, _, parts) in targets.items()}
    try:
        for number in range(rounds):
            # Every other round in the reverse order: none always follows the same one.
            order = list(targets.items()) if number % 2 == 0 else list(targets.items())[::-1]
            for name, (_, _, parts) in order:
                pause_others(own, name)
                before = {part: sum(map(cpu_seconds, pids)) for part, pids in parts.items()}
                measured, duration = client.echo_load(sockets[name], seconds / rounds,
                                                      warmup=0)
                used = {part: sum(map(cpu_seconds, pids)) - before[part]
                        for part, pids in parts.items()}
                for part in parts:
                    cpu[name][part] += used[part]
                latencies[name] += measured
                durations[name] += duration
                per_round[name].append((len(measured) / duration, {
                    part: spent / max(len(measured), 1) * 1000 for part, spent in used.items()}))
    finally:
        pause_others(own, None)
        for opened in sockets.values():
            client.close_all(opened)
    return {name: {"rate": len(latencies[name]) / durations[name],
                   "rounds": per_round[name],
                   "p50": percentile(latencies[name], 0.5) * 1000,
                   "p99": percentile(latencies[name], 0.99) * 1000,
                   "cpu": {part: used / len(latencies[name]) * 1000
                           for part, used in cpu[name].items()}}
            for name in targets}


def pause_others(own: dict[str, list[int]], measured: str | None) -> None:
    """Resume ``measured``'s processes and stop every other target's (None:
    resume all). Rounds last a second or two, far less than a heartbeat's
    TTL, so no server takes a stopped worker for dead."""
    for name, pids in own.items():
        for pid in pids:
            os.kill(pid, signal.SIGCONT if name == measured or measured is None
                    else signal.SIGSTOP)


def wait_until(condition, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not in {timeout:g} s: {what}")
        time.sleep(0.1)


def broadcast(sockets, trigger, rounds: int = 10) -> list[float]:
    times = []
    for _ in range(rounds):
        times.append(client.time_to_reach_all(sockets, trigger) * 1000)
        time.sleep(0.1)
    return times


def idle_memory(pid: int, port: int, path: str, count: int, hold: float) -> float:
    """KiB of server memory per open idle socket."""
    before = rss_kib(pid)
    sockets = client.open_sockets(port, path, count, batch=50)
    try:
        time.sleep(hold)
        after = rss_kib(pid)
    finally:
        client.close_all(sockets)
    return (after - before) / count


def connection_cap(options) -> str:
    """runwsserver's --max-connections: room for the most sockets open at
    once (the group's or the idle ones, never both), and the echo's. Past
    it a handshake is answered 503, which is what the server should do."""
    return str(max(options.idle, options.group) + options.clients + 1000)


def start_layer(options, env: dict, redis_server: RedisServer, database: int, workers: int,
                metrics: bool = False) -> tuple[subprocess.Popen, int, list[subprocess.Popen]]:
    """``runwsserver`` and ``workers`` runworker processes on Redis database
    ``database``, with ``--metrics`` on each if asked: ``(server, port,
    workers)``."""
    from tests.support.server_process import free_port

    env = dict(env, CHANNELS_REDIS_HOSTS=redis_server.url_for(database))

    def metrics_options() -> list[str]:
        return ["--metrics", f"127.0.0.1:{free_port()}"] if metrics else []

    server, port = start([PYTHON, "manage.py", "runwsserver", "127.0.0.1:0",
                          "--max-connections", connection_cap(options), *metrics_options()],
                         env, r"http://127\.0\.0\.1:(\d+)/")
    started = [start([PYTHON, "manage.py", "runworker", "--prefetch", str(options.prefetch),
                      *metrics_options()], env, r"(Running worker)")[0]
               for _ in range(workers)]
    return server, int(port), started


def layer_parts(server, port, workers, redis_server: RedisServer) -> dict[str, list[int]]:
    """The processes whose CPU a layer target's messages cost (of
    ``start_layer``'s answer)."""
    return {"interface server": [server.pid], "workers": [worker.pid for worker in workers],
            "redis": [redis_server.process.pid], "client": [os.getpid()]}


def worker_count(workers: int) -> str:
    return f"{workers} worker{'s' * (workers > 1)}"


def metrics_cost(off: dict, on: dict) -> None:
    pairs = list(zip(on["rounds"], off["rounds"], strict=True))
    ratios = [a[0] / b[0] for a, b in pairs]
    # The rounds take turns at going first: the geometric mean cancels
    # what going second costs.
    share = statistics.geometric_mean(ratios)

    def cpu_ratio(parts: list[str]) -> float:
        return statistics.geometric_mean(
            sum(a[1][part] for part in parts) / sum(b[1][part] for part in parts)
            for a, b in pairs)
    print(f"  metrics on: {on['rate']:.0f} msg/s, p50 {on['p50']:.2f} ms, p99 "
          f"{on['p99']:.2f} ms; {share:.1%} of the layer's msg/s with them off (target "
          f">= 95%: {'met' if share >= 0.95 else 'MISSED'}; geometric mean of the rounds' "
          f"ratios); round by round: "
          + ", ".join(format(ratio, ".3f") for ratio in ratios))
    print("    CPU per message with metrics: " + ", ".join(
        f"{part} {used:.3f} ms" for part, used in on["cpu"].items()))
    # Redis does the same work either way: its ratio shows how much the
    # machine's state alone moved the figures.
    print(f"    CPU per message, metrics on / off (geometric means of the rounds' ratios): "
          f"interface server and workers {cpu_ratio(['interface server', 'workers']):.1%}, "
          f"Redis (the control: metrics do not touch it) {cpu_ratio(['redis']):.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="runworker processes behind the server; several counts "
                             "are measured side by side (default: 1)")
    parser.add_argument("--prefetch", type=int, default=PREFETCH,
                        help="the workers' --prefetch (default: %(default)s)")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--group", type=int, default=500,
                        help="sockets for the broadcast figure (0: skip it)")
    parser.add_argument("--idle", type=int, default=10000,
                        help="idle sockets for the memory figure (0: skip it)")
    parser.add_argument("--hold", type=float, default=12,
                        help="seconds the idle sockets stay open")
    parser.add_argument("--redis", choices=["unix", "tcp"], default="unix",
                        help="how the processes reach Redis (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=5,
                        help="alternating rounds the echo time is split into")
    parser.add_argument("--metrics-cost", action="store_true",
                        help="also a setup with --metrics on, echoed in the same rounds")
    options = parser.parse_args()

    redis_server = RedisServer(unix_socket=options.redis == "unix").start()
    env = layer_environment(redis_server, "benchmarks.websocket_settings")
    processes = []
    try:
        # Database 1 is the --metrics-cost setup's.
        layers = {}
        for number, count in enumerate(options.workers):
            layers[count] = start_layer(options, env, redis_server, number and number + 1,
                                        count)
            processes += [layers[count][0], *layers[count][2]]
        server, port, workers = layers[options.workers[0]]
        plain, plain_port = start([PYTHON, os.path.join(HERE, "websocket_plain.py"), "0"],
                                  env, r"listening (\d+)")
        processes.append(plain)
        plain_port = int(plain_port)
        measured = None
        if options.metrics_cost:
            measured = start_layer(options, env, redis_server, 1, options.workers[0],
                                   metrics=True)
            processes.extend([measured[0], *measured[2]])

        import django

        django.setup()
        from benchmarks.websocket_consumers import GROUP
        from channels import Group

        print(f"command: {' '.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])}")
        print(f"machine: {os.cpu_count()} cores; everything (redis over {options.redis}, "
              f"server, its worker processes, client) on it")

        targets = {
            "plain": (plain_port, "/", {"plain server": [plain.pid], "client": [os.getpid()]}),
            **{f"layer, {worker_count(count)}": (
                layers[count][1], "/ws/echo/", layer_parts(*layers[count], redis_server))
               for count in options.workers},
        }
        first = f"layer, {worker_count(options.workers[0])}"
        if measured is not None:
            targets["layer, --metrics"] = (measured[1], "/ws/echo/",
                                           layer_parts(*measured, redis_server))
        # What each target has to itself: all but Redis and this client.
        own = {name: [pid for part, pids in parts.items() if part not in ("redis", "client")
                      for pid in pids]
               for name, (_, _, parts) in targets.items()}
        results = echo(targets, options.clients, options.seconds, options.rounds, own)
        if measured is not None:
            metrics_cost(results[first], results["layer, --metrics"])
        plain_echo = results["plain"]
        print(f"\necho, {options.clients} clients, {options.seconds:g} s each "
              f"(in {options.rounds} alternating rounds):")
        print(f"  {'plain Autobahn (baseline)':31} {plain_echo['rate']:8.0f} msg/s  "
              f"p50 {plain_echo['p50']:6.2f} ms  p99 {plain_echo['p99']:6.2f} ms")
        for count in options.workers:
            result = results[f"layer, {worker_count(count)}"]
            share = result["rate"] / plain_echo["rate"] * 100
            print(f"  {'through the layer, ' + worker_count(count):31} {result['rate']:8.0f} "
                  f"msg/s  p50 {result['p50']:6.2f} ms  p99 {result['p99']:6.2f} ms; "
                  f"{share:.0f}% of plain (target >= 70%: {'met' if share >= 70 else 'MISSED'})")
        print("  CPU per message, and cores busy:")
        for name, result in results.items():
            if name == "layer, --metrics":
                continue
            busy = sum(result["cpu"].values()) * result["rate"] / 1000
            print(f"    {name}: " + ", ".join(
                f"{part} {used:.3f} ms" for part, used in result["cpu"].items())
                + f"; {busy:.2f} of {os.cpu_count()} cores busy")

        if options.group > 0:
            # websocket.connect holds 100 messages (CAPACITY): open in batches.
            # One server's sockets at a time: both at once would take twice
            # as many descriptors of this process.
            group_sockets = client.open_sockets(port, "/ws/group/", options.group, batch=50)
            try:
                group = Group(GROUP)
                wait_until(lambda: len(group.channels()) == options.group,
                           f"{options.group} sockets in the group")
                layer_times = broadcast(group_sockets, lambda: group.send({"text": "hi"}))
            finally:
                client.close_all(group_sockets)
            plain_sockets = client.open_sockets(plain_port, "/", options.group)
            try:
                trigger = client.frame(b"broadcast:hi")
                plain_times = broadcast(plain_sockets, lambda: plain_sockets[0].send(trigger))
            finally:
                client.close_all(plain_sockets)
            times = statistics.median(layer_times) / statistics.median(plain_times)
            print(f"\ngroup message to {options.group} sockets, received by all "
                  f"(median / max of 10):")
            print(f"  plain Autobahn (baseline)   {statistics.median(plain_times):6.1f} / "
                  f"{max(plain_times):6.1f} ms")
            print(f"  through the layer           {statistics.median(layer_times):6.1f} / "
                  f"{max(layer_times):6.1f} ms; median {times:.2f}x plain (target <= 1.5x: "
                  f"{'met' if times <= 1.5 else 'MISSED'}; at 500 sockets also <= 40 ms)")

        if options.idle > 0:
            time.sleep(1)
            layer_kib = idle_memory(server.pid, port, "/ws/echo/", options.idle, options.hold)
            time.sleep(1)
            plain_kib = idle_memory(plain.pid, plain_port, "/", options.idle, 2)
            print(f"\nmemory per idle WebSocket, {options.idle} open "
                  f"(held {options.hold:g} s; no keepalives, WEBSOCKET_KEEPALIVE is off):")
            print(f"  plain Autobahn (baseline)   {plain_kib:6.1f} KiB")
            print(f"  interface server            {layer_kib:6.1f} KiB  (target <= 20 KiB)")
        if server.poll() is not None:
            raise RuntimeError("runwsserver died during the benchmark")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
