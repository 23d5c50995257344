"""Waiting on several Redis shards at once: a prompt wake from any, no
message held by a busy receiver or delivered twice, and the redis-py limits
it must not trip over."""

import threading
import time

from tests.support.redis_servers import redis_backend
from tests.support.redis_tests import RedisTestCase, command_calls


class WaitingOnSeveralShardsTests(RedisTestCase):
    def test_prompt_wake_from_any_shard(self):
        backend = self.make_backend()
        listen = ["!fixed.0", "!fixed.2", "!fixed.6", "q"]
        self.assertEqual({backend.placement.home(c)[0] for c in listen[:3]}, {0, 1, 2})
        backend.receive_many_blocking(listen, 0.01)
        for target in listen[:3]:
            sent = []
            timer = threading.Timer(0.05, lambda target=target, sent=sent: (
                sent.append(time.monotonic()), backend.send(target, {"to": target})))
            timer.start()
            self.assertEqual(backend.receive_many_blocking(listen, 5), (target, {"to": target}))
            woke = time.monotonic()
            timer.join()
            self.assertLess(woke - sent[0], 0.2)

    def test_no_message_held_by_a_busy_receiver(self):
        """Two messages arrive on two shards at once: the receiver that takes
        one leaves the other for the next receiver, whatever the timing."""
        busy = self.make_backend()
        other = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(other.close)
        sender = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(sender.close)
        for round_ in range(30):
            thread = threading.Thread(
                target=lambda: sender.send_many([("q", {"n": 1}), ("!fixed.1", {"n": 2}),
                                                 ("!fixed.2", {"n": 3})]))
            thread.start()
            first = busy.receive_many_blocking(["q", "!fixed.1", "!fixed.2"], 5)
            thread.join()
            # A message that a losing pop took goes back within moments,
            # while the busy receiver is away handling its own.
            rest = [other.receive_many_blocking(["q", "!fixed.1", "!fixed.2"], 0.5)
                    for _ in range(2)]
            got = sorted(m["n"] for _, m in [first, *rest] if m is not None)
            self.assertEqual(got, [1, 2, 3], round_)
            self.assertEqual(other.receive_many(["q", "!fixed.1", "!fixed.2"]), (None, None))

    def test_what_a_losing_pop_took_goes_back_in_order(self):
        """Batches arrive on three shards at once: the pops that lose give
        back everything they took, to the head, in order."""
        busy = self.make_backend()
        other = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(other.close)
        sender = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(sender.close)
        channels = ["!fixed.0", "!fixed.2", "!fixed.6"]
        self.assertEqual(len({busy.placement.home(c)[0] for c in channels}), 3)
        for round_ in range(20):
            sent = [(channel, {"n": n}) for channel in channels for n in range(6)]
            thread = threading.Timer(0.02, sender.send_many, (sent,))  # once all pops wait
            thread.start()
            got = busy.receive_batch(channels, limit=4, timeout=5)
            thread.join()
            time.sleep(0.05)  # the losing pops are released
            got += other.receive_batch(channels, limit=100, timeout=0)
            got += other.receive_batch(channels, limit=100, timeout=0)
            got += other.receive_batch(channels, limit=100, timeout=0)
            self.assertEqual(sorted((c, m["n"]) for c, m in got),
                             sorted((c, m["n"]) for c, m in sent), round_)
            for channel in channels:
                order = [m["n"] for c, m in got if c == channel]
                self.assertEqual(order, sorted(order), (round_, channel))

    def test_a_wait_on_one_shard_after_a_wait_on_several(self):
        """Connections released after one wait still wait the next time."""
        backend = self.make_backend()
        for _ in range(3):
            threading.Timer(0.1, backend.send, ("!fixed.2", {})).start()
            self.assertEqual(backend.receive_many_blocking(["!fixed.0", "!fixed.2", "!fixed.6"],
                                                           2)[0], "!fixed.2")
            time.sleep(0.2)  # the other pops are released
            before = command_calls(self.servers[0], "blmpop")
            self.assertEqual(backend.receive_many_blocking(["!fixed.0"], 0.2), (None, None))
            # One wait on Redis, not a loop of waits cancelled at once.
            self.assertEqual(command_calls(self.servers[0], "blmpop") - before, 1)

    def test_idle_listener_outlives_redis_py_socket_timeout(self):
        backend = self.make_backend()
        threading.Timer(5.5, backend.send, ("!fixed.1", {"late": True})).start()
        started = time.monotonic()
        self.assertEqual(backend.receive_many_blocking(["q", "!fixed.1"], 10),
                         ("!fixed.1", {"late": True}))
        self.assertGreater(time.monotonic() - started, 5.4)

    def test_bursts_beyond_a_hundred_connections(self):
        """150 threads send at once (redis-py's default pool refuses a
        101st connection) while 50 wait on three shards."""
        backend = self.make_backend(capacity=1000)
        received, errors = [], []
        start = threading.Barrier(200)

        def receive():
            try:
                start.wait()
                deadline = time.monotonic() + 20
                while len(received) < 150 and time.monotonic() < deadline:
                    channel, message = backend.receive_many_blocking(["q", "!fixed.1"], 0.5)
                    if channel is not None:
                        received.append(message["n"])
            except Exception as exc:  # a failure must reach the assertion below
                errors.append(exc)

        def send(n):
            try:
                start.wait()
                backend.send("q", {"n": n})
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=receive) for _ in range(50)]
        threads += [threading.Thread(target=send, args=(n,)) for n in range(150)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(received), list(range(150)))
