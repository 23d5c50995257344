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

- with ``--scaling``, instead: one normal channel over 1 to ``--shards``
  shards (Unix sockets), ``--senders`` processes sending in batches and
  ``--receivers`` taking them, the shard counts alternating in each round:
  messages/s, and Redis's and the clients' CPU per message, from which
  docs/scaling.rst derives what a shard carries.

    python testproject/benchmarks/redis_layer.py [--messages N]
    python testproject/benchmarks/redis_layer.py --scaling [--senders N] [--receivers N]
"""

import argparse
import itertools
import multiprocessing
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
from tests.support.redis_servers import (  # noqa: E402
    RedisServer,
    redis_backend,
    stop_all,
    unique_prefix,
)

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


def cpu_seconds(pid: int) -> float:
    """User and system CPU a process has used, from /proc."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def scaling_sender(hosts, prefix, count, batch, start, cpu) -> None:
    backend = redis_backend([], hosts=hosts, prefix=prefix, capacity=10**8)
    messages = [("bench", CONTENT)] * batch
    start.wait()
    before = sum(os.times()[:2])
    for _ in range(count // batch):
        backend.send_many(messages)
    cpu.put(sum(os.times()[:2]) - before)
    backend.close()


def scaling_receiver(hosts, prefix, total, batch, received, start, cpu) -> None:
    backend = redis_backend([], hosts=hosts, prefix=prefix)
    start.wait()
    before = sum(os.times()[:2])
    while received.value < total:
        got = len(backend.receive_batch(["bench"], limit=batch, timeout=0.2))
        with received.get_lock():
            received.value += got
    cpu.put(sum(os.times()[:2]) - before)
    backend.close()


def scaling_run(servers: list[RedisServer], senders: int, receivers: int, count: int,
                batch: int) -> tuple[float, float, float]:
    """One run: ``senders`` processes each send ``count`` messages to one
    normal channel, in batches, while ``receivers`` processes take them
    in batches (as interface servers and workers do). Returns messages/s,
    and the CPU seconds per message of Redis (all shards) and of the
    clients."""
    context = multiprocessing.get_context("fork")
    hosts = [server.url_for() for server in servers]
    prefix = unique_prefix()
    total = senders * count
    start = context.Barrier(senders + receivers + 1)
    received = context.Value("q", 0)
    cpu = context.Queue()
    processes = [context.Process(target=scaling_sender,
                                 args=(hosts, prefix, count, batch, start, cpu))
                 for _ in range(senders)]
    processes += [context.Process(target=scaling_receiver,
                                  args=(hosts, prefix, total, batch, received, start, cpu))
                  for _ in range(receivers)]
    for process in processes:
        process.start()
    redis_before = sum(cpu_seconds(server.process.pid) for server in servers)
    start.wait()
    started = time.perf_counter()
    clients = sum(cpu.get(timeout=600) for _ in processes)
    elapsed = time.perf_counter() - started
    redis_cpu = sum(cpu_seconds(server.process.pid) for server in servers) - redis_before
    for process in processes:
        process.join()
    redis_backend(servers, hosts=hosts, prefix=prefix).flush()
    return total / elapsed, redis_cpu / total, clients / total


def scaling(options: argparse.Namespace) -> None:
    """Throughput of a normal channel over 1 to ``--shards`` shards, the
    shard counts taking turns within each round."""
    servers = [RedisServer(unix_socket=True).start() for _ in range(options.shards)]
    counts = list(range(1, options.shards + 1))
    print(f"$ {COMMAND} --scaling --shards {options.shards} --senders {options.senders} "
          f"--receivers {options.receivers} --messages {options.messages} "
          f"--batch {options.batch} --rounds {options.rounds}")
    print(f"{os.cpu_count()} CPUs; Redis over Unix sockets; each sender process sends "
          f"{options.messages:,} messages\n")
    results: dict[int, list[tuple[float, float, float]]] = {n: [] for n in counts}
    for round_ in range(options.rounds):
        for shards in counts if round_ % 2 == 0 else counts[::-1]:
            rate, redis_cpu, client_cpu = scaling_run(
                servers[:shards], options.senders, options.receivers, options.messages,
                options.batch)
            results[shards].append((rate, redis_cpu, client_cpu))
            print(f"round {round_ + 1}, {shards} shard(s): {rate:>9,.0f} msg/s   "
                  f"Redis {redis_cpu * 1e6:5.1f} us/msg (all shards)   "
                  f"clients {client_cpu * 1e6:5.1f} us/msg   "
                  f"cores busy {(redis_cpu + client_cpu) * rate:.2f}")
    print()
    base = statistics.median(rate for rate, _, _ in results[1])
    for shards in counts:
        rates_ = [rate for rate, _, _ in results[shards]]
        redis_cpu = statistics.median(cpu for _, cpu, _ in results[shards])
        client_cpu = statistics.median(cpu for _, _, cpu in results[shards])
        rate = statistics.median(rates_)
        print(f"{shards} shard(s), median: {rate:>9,.0f} msg/s ({rate / base:.2f}x of 1 shard; "
              f"runs {min(rates_):,.0f} to {max(rates_):,.0f}); Redis {redis_cpu * 1e6:.1f} "
              f"us/msg, {1 / redis_cpu:,.0f} msg/s per Redis core; clients "
              f"{client_cpu * 1e6:.1f} us/msg")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000,
                        help=f"calls per throughput run (best of {REPEATS} runs); "
                             f"with --scaling, messages per sender process")
    parser.add_argument("--scaling", action="store_true",
                        help="instead, throughput of one normal channel over 1 to --shards "
                             "shards, with several sender and receiver processes")
    parser.add_argument("--shards", type=int, default=3, help="--scaling: most shards")
    parser.add_argument("--senders", type=int, default=2, help="--scaling: sender processes")
    parser.add_argument("--receivers", type=int, default=2,
                        help="--scaling: receiver processes")
    parser.add_argument("--batch", type=int, default=10,
                        help="--scaling: messages per send_many and receive_batch call")
    parser.add_argument("--rounds", type=int, default=2,
                        help="--scaling: rounds, the shard counts alternating in each")
    options = parser.parse_args()
    if options.scaling:
        try:
            scaling(options)
        finally:
            stop_all()
        return 0
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
