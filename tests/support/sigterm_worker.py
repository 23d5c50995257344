"""Run by test_worker in a subprocess: a worker whose consumer is still
running when the parent sends SIGTERM.

Prints "started N" when consumer N starts and "finished N" when it ends; the
consumer only ends after the worker was told to stop, so "finished" proves
the consumer in hand was allowed to complete. With a backend configuration
as JSON in its first argument (a Redis one), the parent can look at what the
worker left on the channel.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"

import django  # noqa: E402

django.setup()

from channels.backends import create_backend  # noqa: E402
from channels.backends.memory import InMemoryChannelBackend  # noqa: E402
from channels.worker import Worker  # noqa: E402


def slow(message):
    print("started", message["n"], flush=True)
    deadline = time.monotonic() + 10
    while not worker.stopping and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.05)  # still working after the signal
    print("finished", message["n"], flush=True)


routing = {"test.slow": slow}
if len(sys.argv) > 1:
    backend = create_backend("default", {**json.loads(sys.argv[1]), "ROUTING": routing})
else:
    backend = InMemoryChannelBackend(routing=routing)
backend.send("test.slow", {"n": 1})
backend.send("test.slow", {"n": 2})
worker = Worker(backend)
worker.install_signal_handlers()
worker.run()
print("exited", flush=True)
