"""At most once under load: 4 worker processes on 3 shards share 20,000
messages; each is handled exactly once.

Run as a script, this module is one of those workers (``work`` below).
"""

import json
import os
import subprocess
import sys
import time

from django.test import SimpleTestCase

from tests.support.redis_servers import backend_config, redis_backend, shared_servers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

MESSAGES = 20_000
WORKERS = 4
# Two normal channels (spread over the shards) and a response channel.
CHANNELS = ["load.a", "load.b", "!load.fixed"]


def work(config: dict, idle: float) -> list[int]:
    """Take messages until none came for ``idle`` seconds after the first."""
    import django
    from django.conf import settings

    settings.configure()
    django.setup()
    from channels.backends import create_backend

    backend = create_backend("default", config)
    handled = []
    print("ready", flush=True)
    while True:
        channel, message = backend.receive_many_blocking(CHANNELS, idle if handled else 30)
        if channel is None:
            return handled
        handled.append(message["n"])


class AtMostOnceUnderLoadTests(SimpleTestCase):
    def test_each_message_handled_exactly_once(self):
        servers = shared_servers(3)
        config = backend_config(servers, capacity=MESSAGES)
        sender = redis_backend(servers, capacity=MESSAGES, prefix=config["PREFIX"])
        self.addCleanup(sender.close)
        self.addCleanup(sender.flush)
        workers = [
            subprocess.Popen(
                [sys.executable, __file__, json.dumps(config)], cwd=ROOT,
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                env={**os.environ, "PYTHONPATH": ROOT},
            )
            for _ in range(WORKERS)
        ]
        for worker in workers:
            self.addCleanup(worker.kill)
            if worker.stdout.readline() != "ready\n":
                self.fail(worker.communicate(timeout=30)[1])
        started = time.monotonic()
        for start in range(0, MESSAGES, 100):
            sender.send_many([(CHANNELS[n % 3], {"n": n}) for n in range(start, start + 100)])
        handled = []
        for worker in workers:
            out, err = worker.communicate(timeout=60)
            self.assertEqual(worker.returncode, 0, err)
            counts = json.loads(out)
            self.assertGreater(len(counts), MESSAGES / WORKERS / 5, "a worker starved")
            handled += counts
        self.assertEqual(len(handled), len(set(handled)), "a message was handled twice")
        self.assertEqual(sorted(handled), list(range(MESSAGES)))
        self.assertLess(time.monotonic() - started, 60)


if __name__ == "__main__":
    print(json.dumps(work(json.loads(sys.argv[1]), idle=1.0)))
