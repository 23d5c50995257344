"""What the Prometheus metrics cost a worker per message, measured in one
process so that other load on the machine hardly moves it.

A ``Worker`` runs a consumer that does nothing over messages waiting on
the in-memory backend, with the worker metrics on (``channels.worker.
metrics.active`` set) and off, in alternating rounds; the figure is the
worker thread's own CPU time per message (``time.thread_time``), which
other processes' load does not add to. Beside it, what the interface
server does per HTTP request with metrics on (a duration observed, a
status counted, a round trip observed), timed the same way. Compare with
the CPU per request of ``http_throughput.py`` (a quarter of a millisecond
per process).

    python testproject/benchmarks/metrics_overhead.py [--messages N] [--rounds N]
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
sys.path[:0] = [os.path.dirname(PROJECT), PROJECT]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")

import django  # noqa: E402

django.setup()

from channels.backends.memory import InMemoryChannelBackend  # noqa: E402
from channels.interfaces.metrics import InterfaceMetrics  # noqa: E402
from channels.worker import metrics as worker_metrics  # noqa: E402
from channels.worker.loop import Worker  # noqa: E402


def worker_round(messages: int, metrics_on: bool) -> float:
    """Microseconds of the worker thread's CPU per message."""
    handled, workers = [], []

    def consumer(message):
        handled.append(1)
        if len(handled) >= messages:
            workers[0].stop()

    backend = InMemoryChannelBackend(alias="bench", capacity=messages + 1,
                                     routing={"bench": consumer})
    backend.keeps_heartbeats = False  # no heartbeat thread in the figure
    for n in range(messages):
        backend.send("bench", {"n": n})
    worker = Worker(backend, channels=["bench"])
    workers.append(worker)
    worker_metrics.active = worker_metrics.WorkerMetrics() if metrics_on else None
    started = time.thread_time()
    worker.run()
    used = time.thread_time() - started
    worker_metrics.active = None
    return used / messages * 1e6


def interface_request(metrics: InterfaceMetrics, requests: int) -> float:
    """Microseconds of CPU per request for what the server adds with
    metrics on: as in HttpProtocol.write and log_access, LayerBridge._sent."""
    started = time.thread_time()
    seconds = time.time
    for _ in range(requests):
        received_at = seconds()
        metrics.request_duration.observe(seconds() - received_at)
        metrics.responses[200] += 1
        metrics.round_trip.observe(seconds() - received_at)
    return (time.thread_time() - started) / requests * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=6)
    options = parser.parse_args()
    worker_round(1000, True)  # warm-up: imports, caches
    off, on = [], []
    for number in range(options.rounds):
        # Every other round in the reverse order.
        for metrics_on in ((False, True) if number % 2 == 0 else (True, False)):
            (on if metrics_on else off).append(worker_round(options.messages, metrics_on))
    cost = statistics.median(a - b for a, b in zip(on, off, strict=True))
    print(f"worker, {options.messages} messages per round, {options.rounds} rounds "
          f"alternating; CPU per message of the worker thread:")
    print(f"  metrics off {statistics.median(off):6.2f} us  (rounds: "
          f"{', '.join(format(v, '.2f') for v in off)})")
    print(f"  metrics on  {statistics.median(on):6.2f} us  (rounds: "
          f"{', '.join(format(v, '.2f') for v in on)})")
    print(f"  the metrics: {cost:+.2f} us per message (median of the rounds' differences)")
    requests = 200000
    per_request = statistics.median(interface_request(InterfaceMetrics(), requests)
                                    for _ in range(options.rounds))
    print(f"interface server, what metrics add per HTTP request: {per_request:.2f} us "
          f"(median of {options.rounds} runs of {requests})")
    print(f"reproduce: python testproject/benchmarks/metrics_overhead.py --messages "
          f"{options.messages} --rounds {options.rounds}")


if __name__ == "__main__":
    main()
