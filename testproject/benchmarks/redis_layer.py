"""The Redis channel layer against raw redis-py, in one run, on the same
throwaway redis-server processes (started here, stopped at the end).

Figures, each printed with its baseline and target:

- sync ``send`` and ``receive`` (a worker's ``receive_many_blocking``) of one
  process, on one shard and on three, next to the raw redis-py client doing
  the least the same work needs: one ``RPUSH`` per send, one ``LPOP`` per
  receive, no Lua, taking the servers in turn (target: at least 70% of the
  raw rate). The backend talks to Redis over bare redis-py connections
  rather than through ``redis.Redis``; the rate of raw commands over such
  connections is printed too, as the most any Python client gets here.
- ``send_group`` to 1,000 members (the response channels of one interface
  process): per call, and until all 1,000 are read by that process with
  ``receive_batch`` (targets 2.5 ms and 10 ms); baseline: raw redis-py
  pushing and popping 1,000 values on one list.
- idle receive latency across 3 shards: from ``send`` to the return of a
  ``receive_many_blocking`` waiting on channels of all three (targets: median
  5 ms, p99 20 ms); baseline: a raw ``BLPOP`` on one server.

    python testproject/benchmarks/redis_layer.py [--messages N]
"""

import argparse
import itertools
import os
import statistics
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(DATABASES={}, INSTALLED_APPS=[], SECRET_KEY="benchmark")
django.setup()

import redis  # noqa: E402

from channels.backends.encoding import encode  # noqa: E402
from channels.names import new_name, process_wildcard  # noqa: E402
from tests.support.redis_servers import RedisServer, redis_backend, stop_all  # noqa: E402

COMMAND = "python testproject/benchmarks/redis_layer.py"
CONTENT = {"text": "hello, world", "reply_channel": new_name("!websocket.send"),
           "path": "/chat/", "order": 3}
REPEATS = 3


def rates(operations: dict, count: int) -> dict:
    """Calls per second of each operation: the best of REPEATS rounds of
    ``count`` calls, the operations taking turns within each round so that
    a busy machine slows them alike."""
    best = dict.fromkeys(operations, 0.0)
    for _ in range(REPEATS):
        for name, operation in operations.items():
            started = time.perf_counter()
            for _ in range(count):
                operation()
            best[name] = max(best[name], count / (time.perf_counter() - started))
    return best


MISSED: list[str] = []


def report(name: str, value: str, baseline: str, target: str, met: bool) -> None:
    if not met:
        MISSED.append(name)
    print(f"{name:46s} {value:>14s}   baseline {baseline:>14s}   target {target:14s} "
          f"{'met' if met else 'MISSED'}")


def throughput(servers: list[RedisServer], count: int) -> None:
    """The raw baseline does the same work: its RPUSHes and LPOPs take the
    servers in turn, as the backend's sends and receives of a normal
    channel do."""
    shards = len(servers)
    backend = redis_backend(servers, capacity=10 * REPEATS * count)
    payload = backend.layout.entry("bench", encode(CONTENT), 0)  # what a send stores
    clients = [server.client() for server in servers]
    connections = [redis.Connection(host=server.host, port=server.port, protocol=2)
                   for server in servers]
    turn = itertools.count()

    def client():
        return clients[next(turn) % shards]

    def bare(*args):
        connection = connections[next(turn) % shards]
        connection.send_command(*args)
        return connection.read_response()

    pushes = rates({
        "raw": lambda: client().rpush("raw", payload),
        "bare": lambda: bare("RPUSH", "raw", payload),
        "send": lambda: backend.send("bench", CONTENT),
    }, count)
    pops = rates({
        "raw": lambda: client().lpop("raw"),
        "bare": lambda: bare("LPOP", "raw"),
        "receive": lambda: backend.receive_many_blocking(["bench"], 1),
    }, count)
    label = f"{shards} shard{'s' if shards > 1 else ''}"
    send, raw_push = pushes["send"], pushes["raw"]
    receive, raw_pop = pops["receive"], pops["raw"]
    report(f"send, {label} (msg/s)", f"{send:,.0f}", f"RPUSH {raw_push:,.0f}",
           f">= {0.7 * raw_push:,.0f}", send >= 0.7 * raw_push)
    print(f"{'':46s} {send / raw_push:14.0%}   bare-connection RPUSH {pushes['bare']:,.0f}")
    report(f"receive, {label} (msg/s)", f"{receive:,.0f}", f"LPOP {raw_pop:,.0f}",
           f">= {0.7 * raw_pop:,.0f}", receive >= 0.7 * raw_pop)
    print(f"{'':46s} {receive / raw_pop:14.0%}   bare-connection LPOP {pops['bare']:,.0f}")
    for client_, connection in zip(clients, connections, strict=True):
        client_.delete("raw")
        client_.close()
        connection.disconnect()
    backend.flush()
    backend.close()


def group_send(servers: list[RedisServer], rounds: int = 50) -> None:
    backend = redis_backend(servers)
    members = [new_name("!websocket.send") for _ in range(1000)]
    for member in members:
        backend.group_add("bench", member)
    wildcard = process_wildcard("!websocket.send")
    calls, readable = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        backend.send_group("bench", CONTENT)
        sent = time.perf_counter()
        got = 0
        while got < len(members):
            got += len(backend.receive_batch([wildcard], limit=1000, timeout=1))
        done = time.perf_counter()
        calls.append((sent - started) * 1000)
        readable.append((done - started) * 1000)
    client = servers[0].client()
    values = [b"x" * len(encode(CONTENT))] * 1000
    raw = []
    for _ in range(rounds):
        started = time.perf_counter()
        client.rpush("raw", *values)
        client.lpop("raw", 1000)
        raw.append((time.perf_counter() - started) * 1000)
    client.close()
    call, all_read, base = (statistics.median(x) for x in (calls, readable, raw))
    report("send_group, 1,000 members: per call (ms)", f"{call:.2f}",
           f"{base:.2f} (raw)", "< 2.5", call < 2.5)
    report("send_group, 1,000 members: all read (ms)", f"{all_read:.2f}",
           f"{base:.2f} (raw)", "< 10", all_read < 10)
    backend.flush()
    backend.close()


def idle_latency(servers: list[RedisServer], samples: int = 300) -> None:
    receiver = redis_backend(servers)
    sender = redis_backend(servers, prefix=receiver.prefix)
    homes = {}
    for n in range(100):  # a response channel on each shard, and a normal one
        homes.setdefault(receiver.placement.home(f"!bench.{n}")[0], f"!bench.{n}")
    listen = ["bench.idle", *homes.values()]
    targets = [*homes.values(), "bench.idle"]

    def measure(receive, send) -> list[float]:
        latencies = []
        for n in range(samples):
            stamp = []
            timer = threading.Timer(0.003, lambda n=n, stamp=stamp: (
                stamp.append(time.perf_counter()), send(n)))
            timer.start()
            receive()
            latencies.append((time.perf_counter() - stamp[0]) * 1000)
            timer.join()
        return sorted(latencies)

    receiver.receive_many_blocking(listen, 0.01)  # connections made
    ours = measure(lambda: receiver.receive_many_blocking(listen, 5),
                   lambda n: sender.send(targets[n % len(targets)], CONTENT))
    client = servers[0].client()
    raw = measure(lambda: client.blpop(["raw"], 5), lambda n: client.rpush("raw", b"x"))
    client.close()

    def p99(values):
        return values[int(len(values) * 0.99) - 1]

    report("idle receive latency, 3 shards: median (ms)", f"{statistics.median(ours):.2f}",
           f"{statistics.median(raw):.2f} (BLPOP)", "< 5", statistics.median(ours) < 5)
    report("idle receive latency, 3 shards: p99 (ms)", f"{p99(ours):.2f}",
           f"{p99(raw):.2f} (BLPOP)", "< 20", p99(ours) < 20)
    receiver.flush()
    receiver.close()
    sender.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000,
                        help=f"calls per throughput run (best of {REPEATS} runs)")
    options = parser.parse_args()
    servers = [RedisServer().start() for _ in range(3)]
    try:
        print(f"$ {COMMAND} --messages {options.messages}")
        print(f"redis-py {redis.__version__}, {os.cpu_count()} CPUs, 3 redis-server processes "
              f"on loopback\n")
        throughput(servers[:1], options.messages)
        throughput(servers, options.messages)
        group_send(servers)
        idle_latency(servers)
    finally:
        stop_all()
    if MISSED:
        print(f"\n{len(MISSED)} target(s) missed: {'; '.join(MISSED)}")
    return 1 if MISSED else 0


if __name__ == "__main__":
    sys.exit(main())
