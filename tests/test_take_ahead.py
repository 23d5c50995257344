"""How many waiting messages a worker takes in one receive: up to
``--prefetch``, no more than it expects to run in ``TAKE_AHEAD`` seconds.
The estimate alone, then what a real worker asks its backend for."""

import threading
import time

from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.worker import Worker
from channels.worker.take_ahead import FIRST_TAKE, PREFETCH, TAKE_AHEAD, TakeAhead
from tests.support.worker_threads import wait_for


class EstimateTests(SimpleTestCase):
    def test_it_takes_the_first_take_until_it_has_seen_messages_run(self):
        self.assertEqual(TakeAhead().wanted(), FIRST_TAKE)
        self.assertEqual(TakeAhead(3).wanted(), 3)
        self.assertEqual(TakeAhead(1).wanted(), 1)

    def test_cheap_messages_raise_it_to_the_most(self):
        take = TakeAhead()
        for _ in range(30):
            take.ran(take.wanted(), take.wanted() * TAKE_AHEAD / 1000)
        self.assertEqual(take.wanted(), PREFETCH)

    def test_messages_that_use_up_the_time_go_one_at_a_time(self):
        take = TakeAhead()
        take.ran(FIRST_TAKE, FIRST_TAKE * TAKE_AHEAD * 4)
        self.assertEqual(take.wanted(), 1)
        for _ in range(10):
            take.ran(1, TAKE_AHEAD)
        self.assertEqual(take.wanted(), 1)

    def test_it_follows_the_messages_as_they_change(self):
        take = TakeAhead()
        for _ in range(30):  # about a tenth of the time each: about ten
            take.ran(take.wanted(), take.wanted() * TAKE_AHEAD / 10)
        self.assertIn(take.wanted(), range(8, 11))
        for _ in range(30):
            take.ran(take.wanted(), take.wanted() * TAKE_AHEAD / 1000)
        self.assertEqual(take.wanted(), PREFETCH)

    def test_a_receive_that_ran_nothing_teaches_nothing(self):
        take = TakeAhead()
        take.ran(0, 10.0)
        self.assertEqual(take.wanted(), FIRST_TAKE)


class AskingBackend(InMemoryChannelBackend):
    """A memory backend that notes how many messages each receive asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = []

    def receive_batch(self, channels, limit=100, timeout=None):
        batch = super().receive_batch(channels, limit, timeout)
        if batch:
            self.asked.append(limit)
        return batch


class WorkerTests(SimpleTestCase):
    def run_worker(self, consumer, count, prefetch, seconds):
        seen = []

        def counted(message):
            consumer(message)
            seen.append(message["n"])

        backend = AskingBackend(routing={"test.t": counted}, capacity=count)
        for n in range(count):
            backend.send("test.t", {"n": n})
        worker = Worker(backend, channels=["test.t"], prefetch=prefetch)
        worker.take_ahead = TakeAhead(prefetch, seconds)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(worker.stop)
        wait_for(lambda: len(seen) == count, 30)
        self.assertEqual(seen, list(range(count)))
        return backend.asked

    def test_short_consumers_are_taken_up_to_prefetch(self):
        # A whole second to fill: any machine runs 64 no-op consumers in it.
        asked = self.run_worker(lambda message: None, 1000, 64, 1.0)
        self.assertEqual(asked[0], FIRST_TAKE)
        self.assertEqual(asked[-1], 64)

    def test_long_consumers_are_taken_one_at_a_time(self):
        # Each consumer outlasts the time a receive may take ahead (a sleep
        # only ever runs longer than asked).
        asked = self.run_worker(lambda message: time.sleep(0.002), 20, 64, 0.001)
        self.assertEqual(asked[0], FIRST_TAKE)
        self.assertEqual(set(asked[1:]), {1})
        self.assertEqual(len(asked), 20 - FIRST_TAKE + 1)
