"""How long @linearize and @enforce_ordering hold up other connections.

Four worker threads share one in-memory channel. The figure is the latency
of a message of connection Y while connection X is held up:

- busy lock: X has a slow (50 ms) linearized consumer running and a second
  message queued behind it;
- lost message: X's message 1 was lost, and its message 2 waits for it
  (enforce_ordering with max_wait 0.2 s).

With wait=0 X's waiting message goes straight back on the channel (at the
head for @linearize, where Y waits behind it; at the back for an early
message of @enforce_ordering) and the workers keep taking it; with the
default short wait in the worker the other workers serve Y at once.
Baseline: the same consumer undecorated.

    python testproject/benchmarks/linearize.py [runs]
"""

import logging
import os
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import django  # noqa: E402
from django.conf import settings  # noqa: E402

settings.configure(DATABASES={}, INSTALLED_APPS=[], SECRET_KEY="benchmark",
                   SESSION_ENGINE="django.contrib.sessions.backends.cache")
django.setup()
logging.getLogger("channels").setLevel(logging.ERROR)  # the lost message's warning

from channels import Channel  # noqa: E402
from channels.backends.memory import InMemoryChannelBackend  # noqa: E402
from channels.decorators import enforce_ordering, linearize  # noqa: E402
from channels.worker import Worker  # noqa: E402

SLOW = 0.05
WORKERS = 4


def latency_ms(decorate, x_messages) -> float:
    done = {}
    finished = threading.Event()

    def consumer(message):
        if message["slow"]:
            time.sleep(SLOW)
        done[message["id"]] = time.monotonic()
        if "y" in done:
            finished.set()

    backend = InMemoryChannelBackend(routing={"bench": decorate(consumer)})
    workers = [Worker(backend) for _ in range(WORKERS)]
    threads = [threading.Thread(target=w.run) for w in workers]
    for worker, thread in zip(workers, threads, strict=True):
        worker.poll_timeout = 0.05
        thread.start()
    x, y = Channel.new_name("!x"), Channel.new_name("!y")
    for content in x_messages:
        backend.send("bench", {"reply_channel": x, **content})
    time.sleep(0.005)  # X is held up now
    sent = time.monotonic()
    backend.send("bench", {"reply_channel": y, "slow": False, "id": "y"})
    finished.wait(10)
    for worker in workers:
        worker.stop()
    for thread in threads:
        thread.join()
    return (done["y"] - sent) * 1000


BUSY = [{"slow": True, "id": "x1"}, {"slow": True, "id": "x2"}]
LOST = [{"slow": False, "id": "x0", "order": 0}, {"slow": False, "id": "x2", "order": 2}]


def main(runs: int) -> None:
    cases = [
        ("busy lock", BUSY, [
            ("undecorated (baseline)", lambda f: f),
            ("@linearize(wait=0): requeue at once", linearize(wait=0)),
            ("@linearize (default wait)", linearize),
        ]),
        ("lost message", LOST, [
            ("undecorated (baseline)", lambda f: f),
            ("@enforce_ordering(wait=0)", enforce_ordering(max_wait=0.2, wait=0)),
            ("@enforce_ordering (default wait)", enforce_ordering(max_wait=0.2)),
        ]),
    ]
    print(f"Latency of connection Y's message while connection X is held up, "
          f"{WORKERS} workers, {runs} runs each:")
    for title, x_messages, variants in cases:
        print(f" {title}:")
        for name, decorate in variants:
            samples = sorted(latency_ms(decorate, x_messages) for _ in range(runs))
            print(f"  {name:40s} p50 {statistics.median(samples):6.1f} ms   "
                  f"max {samples[-1]:6.1f} ms")
    print(f"Reproduce: python testproject/benchmarks/linearize.py {runs}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20)
