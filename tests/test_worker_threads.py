"""ThreadedWorker and the message limit, in this process on the in-memory
backend (the same as real processes: tests/test_worker_concurrency.py)."""

import threading

from django.db import connections
from django.test import SimpleTestCase

from channels import Channel
from channels.backends.memory import InMemoryChannelBackend
from channels.heartbeats import WORKER, live
from channels.worker import Worker
from channels.worker import metrics as worker_metrics
from channels.worker.threads import ThreadedWorker
from tests.support.worker_threads import wait_for
from tests.test_metrics import at, exposed


class CountingBackend(InMemoryChannelBackend):
    """Records how many messages each receive asked for."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked = []

    def receive_batch(self, channels, count, timeout=None):
        self.asked.append(count)
        return super().receive_batch(channels, count, timeout)


class ThreadedWorkerTests(SimpleTestCase):
    def setUp(self):
        self.release = threading.Event()
        self.addCleanup(self.release.set)
        self.running = []
        self.done = []
        self.backend = CountingBackend(routing={"test.t": self.consumer},
                                       heartbeat_interval=0.2, heartbeat_ttl=1)

    def consumer(self, message):
        self.running.append(message["n"])
        self.release.wait(30)
        self.done.append(message["n"])

    def start(self, worker):
        worker.poll_timeout = 0.05
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 10)
        self.addCleanup(worker.stop)
        return thread

    def test_takes_no_more_than_its_idle_threads_can_start(self):
        for n in range(10):
            self.backend.send("test.t", {"n": n, "reply_channel": Channel.new_name("!t.reply")})
        worker = ThreadedWorker(self.backend, threads=4)
        self.start(worker)
        wait_for(lambda: len(self.running) == 4, timeout=10)
        # All four threads are busy and nothing is held: six still wait,
        # for any other worker to take.
        self.assertEqual(worker.taken, 4)
        self.assertEqual(worker.idle, 0)
        self.assertTrue(all(asked <= 4 for asked in self.backend.asked), self.backend.asked)
        # One record for the process, with each thread's message in hand.
        wait_for(lambda: [(record["threads"], len(record["in_hand"]))
                          for record in live(WORKER, self.backend)] == [(4, 4)], timeout=10)
        self.release.set()
        wait_for(lambda: len(self.done) == 10, timeout=10)
        self.assertEqual(sorted(self.done), list(range(10)))
        wait_for(lambda: worker.counts()["handled"] == 10, timeout=10)

    def test_stop_lets_each_thread_finish_and_takes_nothing_more(self):
        for n in range(3):
            self.backend.send("test.t", {"n": n})
        worker = ThreadedWorker(self.backend, threads=2)
        thread = self.start(worker)
        wait_for(lambda: len(self.running) == 2, timeout=10)
        worker.stop()
        self.release.set()
        thread.join(10)
        self.assertFalse(thread.is_alive())
        self.assertEqual(sorted(self.done), [0, 1])
        self.assertEqual(self.backend.receive_many(["test.t"])[1], {"n": 2})
        self.assertEqual(worker.handled, 2)
        self.assertEqual(live(WORKER, self.backend), [])  # written stopped

    def test_each_thread_closes_its_database_connections_when_it_ends(self):
        closed = []
        backend = InMemoryChannelBackend(routing={"test.db": lambda m: connections["default"]
                                                  .ensure_connection()})
        backend.send("test.db", {})
        worker = ThreadedWorker(backend, threads=2)
        original = connections.close_all

        def close_all():
            closed.append(threading.current_thread().name)
            original()

        connections.close_all = close_all
        self.addCleanup(setattr, connections, "close_all", original)
        thread = self.start(worker)
        wait_for(lambda: worker.counts()["handled"] == 1, timeout=10)
        worker.stop()
        thread.join(10)
        self.assertEqual(sorted(closed), ["channels-worker-1", "channels-worker-2"])

    def test_metrics_count_the_threads_and_each_threads_messages(self):
        metrics = worker_metrics.WorkerMetrics()
        self.addCleanup(setattr, worker_metrics, "active", worker_metrics.active)
        worker_metrics.active = metrics
        for n in range(5):
            self.backend.send("test.t", {"n": n})
        worker = ThreadedWorker(self.backend, threads=3)
        thread = self.start(worker)
        wait_for(lambda: len(self.running) == 3, timeout=10)
        self.assertEqual(at(exposed(metrics), "channels_worker_threads"), 3)
        self.release.set()
        wait_for(lambda: worker.counts()["handled"] == 5, timeout=10)
        worker.stop()
        thread.join(10)
        samples = exposed(metrics)
        self.assertEqual(at(samples, "channels_worker_threads"), 0)
        self.assertEqual(at(samples, "channels_worker_messages_total", channel="test.t",
                            outcome="ok"), 5)
        self.assertEqual(at(samples, "channels_message_age_seconds_count", channel="test.t"), 5)

    def test_threads_must_be_positive(self):
        with self.assertRaisesMessage(ValueError, "threads must be a positive integer, not 0"):
            ThreadedWorker(self.backend, threads=0)


class MessageLimitTests(SimpleTestCase):
    def setUp(self):
        self.seen = []
        self.backend = InMemoryChannelBackend(routing={"test.m": self.seen.append})
        for n in range(5):
            self.backend.send("test.m", {"n": n})

    def test_a_worker_stops_after_its_limit_leaving_the_rest(self):
        for worker in (Worker(self.backend, max_messages=3),
                       ThreadedWorker(self.backend, threads=2, max_messages=1)):
            worker.poll_timeout = 0.05
            worker.run()  # returns by itself
        self.assertEqual([message["n"] for message in self.seen], [0, 1, 2, 3])
        self.assertEqual(self.backend.receive_many(["test.m"])[1], {"n": 4})

    def test_on_limit_is_called_once_and_the_worker_goes_on(self):
        worker = Worker(self.backend, max_messages=2)
        worker.poll_timeout = 0.05
        calls = []
        worker.on_limit = lambda: calls.append(worker.taken)
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        wait_for(lambda: len(self.seen) == 5, timeout=10)
        worker.stop()
        thread.join(10)
        self.assertEqual(len(calls), 1)
        self.assertGreaterEqual(calls[0], 2)

    def test_limit_must_be_positive(self):
        with self.assertRaisesMessage(ValueError, "max_messages must be a positive integer"):
            Worker(self.backend, max_messages=0)
