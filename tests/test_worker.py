"""The worker loop."""

import json
import os
import signal
import subprocess
import sys
import threading

from django.db import connection, connections
from django.test import SimpleTestCase

from channels import Channel
from channels.backends import create_backend
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.message import Message
from channels.worker import Worker, filter_channels
from tests.support.redis_servers import backend_config, shared_servers
from tests.support.worker_threads import wait_for, worker_threads

HERE = os.path.dirname(os.path.abspath(__file__))


class FlakyBackend(InMemoryChannelBackend):
    """Fails its first receive, as a backend whose store is restarting does."""

    failed = False

    def _receive_many_blocking(self, channels, timeout):
        if not self.failed:
            self.failed = True
            raise ChannelBackendUnavailable("store restarting")
        return super()._receive_many_blocking(channels, timeout)


class HandleTests(SimpleTestCase):
    databases = {"default"}

    def setUp(self):
        self.calls = []
        self.backend = InMemoryChannelBackend(routing={
            "test.ok": lambda m: self.calls.append(m["n"]),
            "test.fail": self.fail_consumer,
            "websocket.connect": self.connect_consumer,
        })
        self.worker = Worker(self.backend)

    def fail_consumer(self, message):
        raise RuntimeError("consumer broke")

    def connect_consumer(self, message):
        if message.get("raise"):
            raise RuntimeError("refuse")

    def test_listens_on_every_routed_channel(self):
        # ROUTING, the built-in echo and Django's http.request consumer, and
        # the test app's @consumer functions.
        self.assertEqual(self.worker.channels,
                         ["__channels__.echo", "http.request", "test.fail", "test.ok",
                          "testapp.fail", "testapp.greet", "websocket.connect"])

    def test_runs_consumer_with_a_message(self):
        seen = []
        backend = InMemoryChannelBackend(routing={"test.msg": seen.append})
        Worker(backend).handle("test.msg", {"n": 1})
        self.assertIsInstance(seen[0], Message)
        self.assertEqual(seen[0].content, {"n": 1})
        self.assertIs(seen[0].channel_backend, backend)

    def test_consumer_exception_is_logged_with_traceback(self):
        with self.assertLogs("channels.worker", "ERROR") as logs:
            self.worker.handle("test.fail", {})
        self.assertIn("Error in consumer", logs.output[0])
        self.assertIn("'test.fail'", logs.output[0])
        self.assertIn("Traceback", logs.output[0])
        self.assertIn("RuntimeError: consumer broke", logs.output[0])

    def test_connect_accepted_when_consumer_returns_closed_when_it_raises(self):
        reply = Channel.new_name("!websocket.send")
        self.worker.handle("websocket.connect", {"reply_channel": reply})
        self.assertEqual(self.backend.receive_many([reply])[1], {"accept": True})
        with self.assertLogs("channels.worker", "ERROR"):
            self.worker.handle("websocket.connect", {"reply_channel": reply, "raise": True})
        self.assertEqual(self.backend.receive_many([reply])[1], {"close": True})
        self.worker.handle("test.ok", {"reply_channel": reply, "n": 1})
        self.assertEqual(self.backend.receive_many([reply]), (None, None))

    def test_database_connections_a_consumer_opened_are_checked_after_it(self):
        # Django's close_old_connections() marks each open connection's
        # health check as due; a thread that never opened one skips it.
        seen = []

        def consumer(message):
            if message["db"]:
                connection.ensure_connection()
            seen.append(connection.connection is not None)

        backend = InMemoryChannelBackend(routing={"test.db": consumer})
        checked = []

        def run():
            worker = Worker(backend)
            try:
                for db in (False, True, False):
                    worker.handle("test.db", {"db": db})
                    checked.append(connection.health_check_done)
            finally:
                connections.close_all()

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        self.assertEqual(seen, [False, True, True])
        self.assertEqual(checked, [False, False, False])

    def test_requeued_connect_is_not_answered_yet(self):
        def busy(message):
            raise Message.Requeue()

        backend = InMemoryChannelBackend(routing={"websocket.connect": busy})
        reply = Channel.new_name("!websocket.send")
        Worker(backend).handle("websocket.connect", {"reply_channel": reply})
        self.assertEqual(backend.receive_many([reply]), (None, None))
        self.assertEqual(backend.receive_many(["websocket.connect"])[1],
                         {"reply_channel": reply})

    def test_requeue_puts_message_back_at_the_head(self):
        attempts = []

        def consumer(message):
            attempts.append(message["n"])
            if len(attempts) == 1:
                raise Message.Requeue()

        backend = InMemoryChannelBackend(routing={"test.rq": consumer})
        backend.send("test.rq", {"n": 2})
        Worker(backend).handle("test.rq", {"n": 1})
        self.assertEqual(backend.receive_many(["test.rq"])[1], {"n": 1})
        self.assertEqual(backend.receive_many(["test.rq"])[1], {"n": 2})

    def test_unrouted_and_malformed_messages_are_dropped_with_a_log(self):
        with self.assertLogs("channels.worker", "WARNING") as logs:
            self.worker.handle("test.nobody", {})
        self.assertIn("No consumer for channel 'test.nobody'", logs.output[0])
        with self.assertLogs("channels.worker", "ERROR") as logs:
            self.worker.handle("test.ok", {"reply_channel": "bad name", "n": 1})
        self.assertIn("Malformed message", logs.output[0])
        self.assertEqual(self.calls, [])

    def test_failing_callback_does_not_stop_the_consumer(self):
        def callback(channel, message):
            raise RuntimeError("callback broke")

        worker = Worker(self.backend, callback=callback)
        with self.assertLogs("channels.worker", "ERROR"):
            worker.handle("test.ok", {"n": 5})
        self.assertEqual(self.calls, [5])


class RunTests(SimpleTestCase):
    def test_loop_survives_consumer_exceptions_and_bad_messages(self):
        done = []

        def consumer(message):
            if message["n"] % 2:
                raise ValueError(message["n"])
            done.append(message["n"])

        backend = InMemoryChannelBackend(routing={"test.loop": consumer})
        with self.assertLogs("channels.worker", "ERROR") as logs:
            with worker_threads(backend, ["test.loop"], 1):
                backend.send("test.loop", {"reply_channel": "bad name", "n": 0})
                for n in range(6):
                    backend.send("test.loop", {"n": n})
                wait_for(lambda: len(done) == 3)
        self.assertEqual(done, [0, 2, 4])
        self.assertEqual(len(logs.output), 4)

    def test_callback_sees_each_message(self):
        seen = []
        backend = InMemoryChannelBackend(routing={"test.cb": lambda m: None})
        worker = Worker(backend, callback=lambda channel, message: seen.append(channel))
        backend.send("test.cb", {})
        worker.handle(*backend.receive_many(["test.cb"]))
        self.assertEqual(seen, ["test.cb"])

    def test_loop_survives_backend_errors(self):
        done = []
        backend = FlakyBackend(routing={"test.flaky": lambda m: done.append(1)})
        with self.assertLogs("channels.worker", "DEBUG") as logs:
            with worker_threads(backend, ["test.flaky"], 1):
                backend.send("test.flaky", {})
                wait_for(lambda: done)
        # An outage is the backend's to log, once per server
        # (test_redis_outages); the worker's line is for debugging.
        self.assertTrue(logs.output[0].startswith("DEBUG:"), logs.output)
        self.assertIn("Could not receive", logs.output[0])

    def test_stop_from_another_thread(self):
        backend = InMemoryChannelBackend(routing={"test.s": lambda m: None})
        with worker_threads(backend, ["test.s"], 2) as workers:
            self.assertFalse(workers[0].stopping)
        self.assertTrue(workers[0].stopping)


class PrefetchTests(SimpleTestCase):
    """A worker takes several waiting messages at once, and gives them back
    rather than keep them waiting."""

    def setUp(self):
        self.seen = []
        self.started = threading.Event()
        self.go_on = threading.Event()
        self.backend = InMemoryChannelBackend(routing={"test.p": self.consumer})

    def consumer(self, message):
        if message["n"] == 0 and not self.go_on.is_set():
            self.started.set()
            self.go_on.wait(10)
        self.seen.append(message["n"])

    def send(self, count):
        for n in range(count):
            self.backend.send("test.p", {"n": n})

    def waiting(self):
        """What waits on the channel now, in order."""
        waiting = []
        while (message := self.backend.receive_many(["test.p"])[1]) is not None:
            waiting.append(message["n"])
        return waiting

    def start(self, worker):
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(worker.stop)
        self.addCleanup(self.go_on.set)
        return thread

    def test_messages_taken_ahead_run_in_order(self):
        self.go_on.set()
        self.send(20)
        worker = Worker(self.backend, channels=["test.p"], prefetch=8)
        self.start(worker)
        wait_for(lambda: len(self.seen) == 20)
        self.assertEqual(self.seen, list(range(20)))

    def test_a_long_consumer_gives_the_messages_ahead_back(self):
        self.send(5)
        worker = Worker(self.backend, channels=["test.p"], prefetch=8)
        self.start(worker)
        self.assertTrue(self.started.wait(5))
        # Taken with message 0, then given back once it ran 100 ms.
        self.assertEqual(self.waiting(), [])
        wait_for(self._gave_back, 2)
        self.assertEqual(self.waiting(), [1, 2, 3, 4])
        self.go_on.set()
        wait_for(lambda: self.seen == [0])

    def _gave_back(self):
        # Looks without taking: the channel holds 4 again.
        with self.backend._lock:
            queue = self.backend._channels.get("test.p")
            return queue is not None and len(queue) == 4

    def test_another_worker_runs_them_meanwhile(self):
        self.send(5)
        first = Worker(self.backend, channels=["test.p"], prefetch=8)
        self.start(first)
        self.assertTrue(self.started.wait(5))
        second = Worker(self.backend, channels=["test.p"], prefetch=8)
        self.start(second)
        wait_for(lambda: self.seen == [1, 2, 3, 4], 2)
        self.go_on.set()
        wait_for(lambda: self.seen == [1, 2, 3, 4, 0])

    def test_a_requeued_message_keeps_its_place_before_those_taken_ahead(self):
        attempts = []

        def consumer(message):
            attempts.append(message["n"])
            if attempts == [0]:
                raise Message.Requeue()
            self.seen.append(message["n"])

        self.backend = InMemoryChannelBackend(routing={"test.p": consumer})
        self.send(5)
        self.start(Worker(self.backend, channels=["test.p"], prefetch=8))
        wait_for(lambda: len(self.seen) == 5)
        self.assertEqual(self.seen, [0, 1, 2, 3, 4])
        self.assertEqual(attempts, [0, 0, 1, 2, 3, 4])

    def test_a_stopped_worker_gives_them_back(self):
        self.send(5)
        worker = Worker(self.backend, channels=["test.p"], prefetch=8)
        worker.release_after = 60
        thread = self.start(worker)
        self.assertTrue(self.started.wait(5))
        worker.stop()
        self.go_on.set()
        thread.join(5)
        self.assertFalse(thread.is_alive())
        self.assertEqual(self.seen, [0])
        self.assertEqual(self.waiting(), [1, 2, 3, 4])

    def test_prefetch_one_takes_one_at_a_time(self):
        self.send(5)
        worker = Worker(self.backend, channels=["test.p"], prefetch=1)
        self.start(worker)
        self.assertTrue(self.started.wait(5))
        self.assertEqual(self.waiting(), [1, 2, 3, 4])

    def test_prefetch_must_be_positive(self):
        for bad in (0, -1, 1.5, "8"):
            with self.assertRaisesMessage(ValueError, "prefetch must be a positive integer"):
                Worker(self.backend, prefetch=bad)


class FilterTests(SimpleTestCase):
    def test_globs(self):
        names = ["http.request", "websocket.connect", "websocket.receive", "chat.messages"]
        self.assertEqual(filter_channels(names), names)
        self.assertEqual(filter_channels(names, only=["websocket.*"]),
                         ["websocket.connect", "websocket.receive"])
        self.assertEqual(filter_channels(names, exclude=["websocket.*", "http.*"]),
                         ["chat.messages"])
        self.assertEqual(filter_channels(names, only=["*.r*"], exclude=["http.*"]),
                         ["websocket.receive"])
        self.assertEqual(filter_channels(names, only=["nothing"]), [])


class SigtermTests(SimpleTestCase):
    def stop_worker(self, *args):
        """Run sigterm_worker.py, SIGTERM it while its first consumer runs;
        return its output."""
        script = os.path.join(HERE, "support", "sigterm_worker.py")
        proc = subprocess.Popen([sys.executable, script, *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            first = proc.stdout.readline()
            if not first:
                self.fail(f"worker subprocess died: {proc.communicate(timeout=20)[1]}")
            self.assertEqual(first.split(), ["started", "1"])
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=20)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 0, err)
        return out

    def test_sigterm_finishes_current_consumer_and_exits_zero(self):
        # The consumer in hand completed; the queued message was left alone.
        self.assertEqual(self.stop_worker().split("\n"), ["finished 1", "exited", ""])

    def test_sigterm_puts_back_what_was_taken_ahead(self):
        config = backend_config(shared_servers(1))
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        self.assertEqual(self.stop_worker(json.dumps(config)).split("\n"),
                         ["finished 1", "exited", ""])
        # Message 2 came with message 1 in one receive, and went back.
        self.assertEqual(backend.receive_many(["test.slow"]), ("test.slow", {"n": 2}))
