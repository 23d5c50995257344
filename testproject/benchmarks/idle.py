"""Idle WebSockets held by one ``runwsserver``, next to plain Autobahn, in one run.

Starts a throwaway redis-server, ``runwsserver``, ``runworker`` and a plain
Autobahn/Twisted echo server (the baseline). For each server in turn it
opens ``--sockets`` WebSockets (the layer's join one group on connect:
benchmarks/idle_consumers.py), from source addresses spread over
127.0.0.0/8, holds them idle for ``--hold`` seconds (answering pings, as
browsers do), and prints:

- the server's RSS, and per socket;
- the CPU of every process while idle, in % of one core, and the Redis
  commands and pushes onto the layer's lists (messages sent) per second
  meanwhile; the pings the sockets answered and the server's CPU per
  ping; the server's idle CPU per socket, and all processes' idle CPU
  extrapolated to 100,000 sockets (the server's in proportion, the
  others' as measured: heartbeats, not per socket), against the target
  of at most 5% of one core. In proportion overstates: pings that come
  seldom cost more each (a reactor turn apiece). So it also says which
  PING_INTERVAL gives 100,000 sockets this run's pings per second, and
  which ``--ping-interval`` gives these sockets the default's rate at
  100,000 (``--sockets 10000 --ping-interval 4.5`` for 45 s);
- that every socket still answers an echo at the end, and how long the
  last answer took;
- that a group message (the plain server: one message relayed to every
  socket) reaches every socket, how long until the last got it, and that
  time over plain Autobahn's (target: at most 1.5x).

``--keepalive`` adds a third server with ``WEBSOCKET_KEEPALIVE`` on, the old
default, held the same way: what the per-socket keepalives cost.

    python testproject/benchmarks/idle.py [--sockets N] [--hold S] [--workers N]
                                          [--keepalive] [--ping-interval S]
                                          [--redis unix|tcp]

The descriptor limit (RLIMIT_NOFILE) is raised to its hard limit, which
every process started here inherits; each process holds one descriptor
per socket, so ``--sockets`` must stay below it.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(PROJECT)
sys.path[:0] = [REPO, PROJECT]

from benchmarks import websocket_client as client  # noqa: E402
from benchmarks.websocket import (  # noqa: E402
    PYTHON,
    cpu_seconds,
    layer_environment,
    rss_kib,
    start,
    wait_until,
)
from channels.interfaces.config import ServerConfig  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402


def raise_descriptor_limit(sockets: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if sockets + 1000 > hard:
        raise SystemExit(
            f"--sockets {sockets} needs more than the hard descriptor limit of {hard} "
            f"per process (ulimit -Hn); raising it needs CAP_SYS_RESOURCE "
            f"(or a higher limit set by whoever starts this benchmark)")
    return hard


def redis_commands(redis_server: RedisServer) -> dict[str, int]:
    connection = redis_server.client()
    try:
        stats = connection.info("commandstats")
    finally:
        connection.close()
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


def held(name: str, port: int, path: str, count: int, hold: float, server_pid: int,
         parts: dict[str, list[int]], broadcast: Callable[[list], object],
         ready: Callable[[], bool], redis_server: RedisServer | None = None) -> dict:
    """Open ``count`` sockets, hold them idle (measuring ``parts``' CPU),
    then echo from each, and ``broadcast`` to them."""
    rss_before = rss_kib(server_pid)
    started = time.monotonic()
    sockets = client.open_sockets(port, path, count)
    opened = time.monotonic() - started
    try:
        wait_until(ready, f"{name}: every socket ready", 120)
        client.hold(sockets, 3)  # the last connects' consumers and writes settle
        cpu = {part: sum(map(cpu_seconds, pids)) for part, pids in parts.items()}
        commands = redis_commands(redis_server) if redis_server else {}
        began = time.monotonic()
        frames, pings = client.hold(sockets, hold)
        wall = time.monotonic() - began
        cpu = {part: (sum(map(cpu_seconds, pids)) - cpu[part]) / wall * 100
               for part, pids in parts.items()}
        if redis_server:
            after = redis_commands(redis_server)
            commands = {name: after[name] - commands.get(name, 0) for name in after
                        if name != "info"}
        rss = rss_kib(server_pid)
        message = client.frame(b"echo")
        timeout = max(60.0, count / 200)
        echo = client.time_to_reach_all(
            sockets, lambda: [sock.send(message) for sock in sockets], timeout)
        reached = client.time_to_reach_all(sockets, lambda: broadcast(sockets), timeout)
    finally:
        client.close_all(sockets)
    return {"name": name, "opened": opened, "cpu": cpu, "wall": wall, "frames": frames,
            "pings": pings,
            "rss": rss, "per_socket": (rss - rss_before) / count,
            "commands": sum(commands.values()) / wall if commands else None,
            "pushes": (commands.get("rpush", 0) + commands.get("lpush", 0)) / wall
            if commands else None,
            "echo": echo, "broadcast": reached}


TARGET_SOCKETS = 100_000
TARGET_CPU = 5.0  # % of one core, every process together, while idle
TARGET_BROADCAST = 1.5  # times plain Autobahn's time for the same fan-out


def report(result: dict, count: int, plain: dict | None = None,
           interval: float | None = None) -> None:
    """What ``held`` measured; with ``plain`` (plain Autobahn's result),
    the extrapolation to TARGET_SOCKETS and the broadcast's ratio, each
    against its target; ``interval`` is the server's PING_INTERVAL."""
    print(f"\n{result['name']}: {count} sockets opened in {result['opened']:.1f} s, "
          f"held idle {result['wall']:.0f} s ({result['frames']} data frames arrived)")
    print(f"  server RSS {result['rss'] / 1024:.0f} MiB, "
          f"{result['per_socket']:.1f} KiB per socket")
    cpu = result["cpu"]
    total = sum(cpu.values())
    print("  CPU while idle, % of one core: " + ", ".join(
        f"{part} {used:.2f}%" for part, used in cpu.items()) + f"; all {total:.2f}%")
    server = next(iter(cpu.values()))  # the interface (or plain) server comes first
    seconds = server / 100 * result["wall"]
    pings = result["pings"]
    print(f"  pings answered: {pings} ({pings / result['wall']:.0f}/s); server CPU "
          + (f"{seconds / pings * 1e6:.1f} µs per ping (all its idle CPU over its pings)"
             if pings else "with no pings"))
    if plain is not None:
        # The server's CPU grows with its sockets; the workers' and Redis's
        # while idle do not (heartbeats), so they are taken as measured.
        per_socket = server / count
        at_target = per_socket * TARGET_SOCKETS + (total - server)
        print(f"  idle CPU per socket: {per_socket * 1e4:.2f} µs a second (server); at "
              f"{TARGET_SOCKETS:,} sockets: all processes {at_target:.2f}% of one core "
              f"(target <= {TARGET_CPU:g}%: {'met' if at_target <= TARGET_CPU else 'MISSED'}; "
              f"extrapolated in proportion)")
        if pings and interval:
            # Fewer pings a second cost more each (a reactor turn apiece,
            # where many share one at 100,000 sockets), so in proportion
            # overstates; the same pings a second on fewer sockets does not.
            same_rate = interval * TARGET_SOCKETS / count
            print(f"    these {pings / result['wall']:.0f} pings/s are what {TARGET_SOCKETS:,} "
                  f"sockets get at PING_INTERVAL {same_rate:g} s; at that interval all "
                  f"processes {total:.2f}% (target: {'met' if total <= TARGET_CPU else 'MISSED'}); "
                  f"for {ServerConfig.ping_interval:g} s, run with --ping-interval "
                  f"{ServerConfig.ping_interval * count / TARGET_SOCKETS:g}")
    if result["commands"] is not None:
        print(f"  Redis while idle: {result['commands']:.1f} commands/s, "
              f"{result['pushes']:.1f} pushes/s onto the layer's lists (0: no message sent)")
    print(f"  echo from every socket: all {count} answered, the last after "
          f"{result['echo'] * 1000:.0f} ms")
    ratio = ""
    if plain is not None:
        times = result["broadcast"] / plain["broadcast"]
        ratio = (f"; {times:.2f}x plain Autobahn's {plain['broadcast'] * 1000:.0f} ms "
                 f"(target <= {TARGET_BROADCAST:g}x: "
                 f"{'met' if times <= TARGET_BROADCAST else 'MISSED'})")
    print(f"  broadcast to every socket: all {count} reached, the last after "
          f"{result['broadcast'] * 1000:.0f} ms{ratio}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=10000)
    parser.add_argument("--hold", type=float, default=60,
                        help="seconds the sockets stay idle (default: %(default)s)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--keepalive", action="store_true",
                        help="also a server with WEBSOCKET_KEEPALIVE on (the old default)")
    parser.add_argument("--redis", choices=["unix", "tcp"], default="unix")
    parser.add_argument("--ping-interval", type=float,
                        help=f"runwsserver's --ping-interval (default: its own, "
                             f"{ServerConfig.ping_interval:g} s; 0: none, "
                             "as the plain server)")
    options = parser.parse_args()
    limit = raise_descriptor_limit(options.sockets)

    redis_server = RedisServer(unix_socket=options.redis == "unix").start()
    env = layer_environment(redis_server, "benchmarks.idle_settings")
    processes = []

    def started(args: list[str], pattern: str, **extra: str):
        process, found = start(args, dict(env, **extra), pattern)
        processes.append(process)
        return process, found

    try:
        server_options = ["--max-connections", str(options.sockets + 1000)]
        if options.ping_interval is not None:
            server_options += ["--ping-interval", str(options.ping_interval)]
        server, port = started([PYTHON, "manage.py", "runwsserver", "127.0.0.1:0",
                                *server_options], r"http://127\.0\.0\.1:(\d+)/")
        workers = [started([PYTHON, "manage.py", "runworker"], r"(Running worker)")[0]
                   for _ in range(options.workers)]
        plain, plain_port = started([PYTHON, os.path.join(HERE, "websocket_plain.py"), "0"],
                                    r"listening (\d+)")

        import django

        django.setup()
        from benchmarks.idle_consumers import GROUP
        from channels import Group

        group = Group(GROUP)
        print(f"command: {' '.join([os.path.relpath(sys.argv[0], REPO)] + sys.argv[1:])}")
        pings = (f"server pings every {ServerConfig.ping_interval:g} s (default)"
                 if options.ping_interval is None
                 else f"server --ping-interval {options.ping_interval:g}")
        print(f"{pings}; the plain server sends no pings")
        print(f"machine: {os.cpu_count()} cores, descriptor limit {limit}; everything "
              f"(redis over {options.redis}, server, {options.workers} worker(s), client) on it")

        def layer(name: str, server, port: int) -> dict:
            return held(name, int(port), "/ws/", options.sockets, options.hold, server.pid, {
                "interface server": [server.pid],
                "workers": [worker.pid for worker in workers],
                "redis": [redis_server.process.pid],
            }, lambda sockets: group.send({"text": "to all"}),
                lambda: len(group.channels()) >= options.sockets, redis_server)

        results = [layer("runwsserver, through the layer", server, port)]
        # The plain server relays a message of one of its clients to all.
        trigger = client.frame(b"broadcast:to all")
        results.append(held("plain Autobahn (baseline)", int(plain_port), "/",
                            options.sockets, options.hold, plain.pid,
                            {"plain server": [plain.pid]},
                            lambda sockets: sockets[0].send(trigger), lambda: True))
        if options.keepalive:
            server.terminate()
            server.wait(30)
            keeping, keeping_port = started(
                [PYTHON, "manage.py", "runwsserver", "127.0.0.1:0", *server_options],
                r"http://127\.0\.0\.1:(\d+)/", IDLE_KEEPALIVE="1")
            results.append(layer("runwsserver, WEBSOCKET_KEEPALIVE on (the old default)",
                                 keeping, keeping_port))
        plain_result = results[1]
        for result in results:
            report(result, options.sockets, None if result is plain_result else plain_result,
                   ServerConfig.ping_interval if options.ping_interval is None
                   else options.ping_interval)
        print(f"\ntargets at {TARGET_SOCKETS:,} sockets: server RSS <= 1.2 GiB, all processes "
              f"<= {TARGET_CPU:g}% of one core while idle, every socket echoes and gets the "
              f"broadcast; at 10,000: the broadcast within {TARGET_BROADCAST:g}x plain Autobahn")
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except Exception:
                process.kill()
        redis_server.cleanup()


if __name__ == "__main__":
    main()
