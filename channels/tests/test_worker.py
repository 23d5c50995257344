"""The worker loop."""

import os
import signal
import subprocess
import sys

from django.test import SimpleTestCase

from channels import Channel
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.message import Message
from channels.tests.worker_threads import wait_for, worker_threads
from channels.worker import Worker, filter_channels

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
        with self.assertLogs("channels.worker", "ERROR") as logs:
            with worker_threads(backend, ["test.flaky"], 1):
                backend.send("test.flaky", {})
                wait_for(lambda: done)
        self.assertIn("Could not receive", logs.output[0])

    def test_stop_from_another_thread(self):
        backend = InMemoryChannelBackend(routing={"test.s": lambda m: None})
        with worker_threads(backend, ["test.s"], 2) as workers:
            self.assertFalse(workers[0].stopping)
        self.assertTrue(workers[0].stopping)


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
    def test_sigterm_finishes_current_consumer_and_exits_zero(self):
        proc = subprocess.Popen([sys.executable, os.path.join(HERE, "sigterm_worker.py")],
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
        # The consumer in hand completed; the queued message was left alone.
        self.assertEqual(out.split("\n"), ["finished 1", "exited", ""])
