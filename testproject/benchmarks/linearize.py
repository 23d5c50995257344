"""How long @linearize holds up other connections.

Four worker threads share one in-memory channel. Connection X has a slow
(50 ms) linearized consumer running and a second message queued behind it;
then connection Y sends one message. The figure is Y's latency: with plain
requeue-at-head (wait=0) the requeued X message sits at the head of the
channel and Y waits for X's consumer; with the default short lock wait the
other workers serve Y at once. Baseline: the same consumer undecorated.

    python testproject/benchmarks/linearize.py [runs]
"""

import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(DATABASES={}, INSTALLED_APPS=[])
django.setup()

from channels import Channel  # noqa: E402
from channels.backends.memory import InMemoryChannelBackend  # noqa: E402
from channels.decorators import linearize  # noqa: E402
from channels.worker import Worker  # noqa: E402

SLOW = 0.05
WORKERS = 4


def latency_ms(decorate) -> float:
    done = {}
    finished = threading.Event()

    def consumer(message):
        if message["slow"]:
            time.sleep(SLOW)
        done[message["id"]] = time.monotonic()
        if len(done) == 3:
            finished.set()

    backend = InMemoryChannelBackend(routing={"bench": decorate(consumer)})
    workers = [Worker(backend) for _ in range(WORKERS)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for worker, thread in zip(workers, threads, strict=True):
        worker.poll_timeout = 0.05
        thread.start()
    x, y = Channel.new_name("!x"), Channel.new_name("!y")
    backend.send("bench", {"reply_channel": x, "slow": True, "id": "x1"})
    backend.send("bench", {"reply_channel": x, "slow": True, "id": "x2"})
    time.sleep(0.005)  # x1 running, x2 contending for X's lock
    sent = time.monotonic()
    backend.send("bench", {"reply_channel": y, "slow": False, "id": "y"})
    finished.wait(10)
    for worker in workers:
        worker.stop()
    for thread in threads:
        thread.join()
    return (done["y"] - sent) * 1000


def main(runs: int) -> None:
    cases = [
        ("undecorated (baseline)", lambda f: f),
        ("@linearize(wait=0): requeue at once", linearize(wait=0)),
        ("@linearize (default wait)", linearize),
    ]
    print(f"Latency of another connection's message while a {SLOW * 1000:.0f} ms "
          f"linearized consumer runs, {WORKERS} workers, {runs} runs:")
    for name, decorate in cases:
        samples = sorted(latency_ms(decorate) for _ in range(runs))
        print(f"  {name:40s} p50 {statistics.median(samples):6.1f} ms   "
              f"max {samples[-1]:6.1f} ms")
    print(f"Reproduce: python testproject/benchmarks/linearize.py {runs}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
