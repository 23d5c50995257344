"""manage.py runworker, run in this process on a shareable in-memory backend."""

import os
import signal
from io import StringIO

from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings

from channels import channel_backends
from channels.message import Message

handled = []
EXPECTED = set()


def record(message):
    handled.append((message.channel.name, message.get("n")))


def stop_when_done(message):
    """Stops the worker the way an operator does, once the expected
    messages ran (requeued until then, so it can be sent first)."""
    if not EXPECTED.issubset(handled):
        raise Message.Requeue()
    os.kill(os.getpid(), signal.SIGTERM)


ROUTING = {
    "work.a": record,
    "work.b": record,
    "other.c": record,
    "work.stop": stop_when_done,
}

SHARED = {
    "default": {
        "BACKEND": "tests.support.backends.SharedMemoryBackend",
        "ROUTING": "tests.test_runworker.ROUTING",
    }
}


@override_settings(CHANNEL_BACKENDS=SHARED)
class RunworkerTests(SimpleTestCase):
    def setUp(self):
        handled.clear()
        EXPECTED.clear()
        for signum in (signal.SIGTERM, signal.SIGINT):
            self.addCleanup(signal.signal, signum, signal.getsignal(signum))
        self.backend = channel_backends["default"]

    def run_worker(self, *args, expect=()):
        EXPECTED.update(expect)
        self.backend.send("work.stop", {})
        out = StringIO()
        call_command("runworker", *args, stdout=out)
        return out.getvalue()

    def test_only_and_exclude_channels(self):
        for channel in ("work.a", "work.b", "other.c"):
            self.backend.send(channel, {"n": 1})
        out = self.run_worker("--only-channels", "work.*", "--exclude-channels", "work.b",
                              expect=[("work.a", 1)])
        self.assertIn("listening on: work.a, work.stop", out)
        self.assertIn("Worker stopped.", out)
        self.assertEqual(handled, [("work.a", 1)])
        # Filtered-out channels were not touched.
        self.assertEqual(self.backend.receive_many(["work.b"])[1], {"n": 1})
        self.assertEqual(self.backend.receive_many(["other.c"])[1], {"n": 1})

    def test_verbosity_2_prints_each_message(self):
        self.backend.send("work.a", {"n": 1, "reply_channel": "!reply.x"})
        self.backend.send("other.c", {"n": 2})
        out = self.run_worker("-v", "2", expect=[("work.a", 1), ("other.c", 2)])
        self.assertIn("work.a (reply: !reply.x)", out)
        self.assertIn("other.c (reply: -)", out)

    def test_verbosity_1_is_quiet(self):
        self.backend.send("work.a", {"n": 1})
        out = self.run_worker(expect=[("work.a", 1)])
        self.assertNotIn("work.a (reply", out)

    def test_prefetch_option(self):
        for n in range(5):
            self.backend.send("work.a", {"n": n})
        self.run_worker("--prefetch", "1", expect=[("work.a", n) for n in range(5)])
        self.assertEqual(handled, [("work.a", n) for n in range(5)])
        with self.assertRaisesMessage(CommandError, "--prefetch must be at least 1, not 0"):
            call_command("runworker", "--prefetch", "0")

    def test_threads_option_runs_a_threaded_worker(self):
        for n in range(6):
            self.backend.send("work.a", {"n": n})
        out = self.run_worker("--threads", "3", expect=[("work.a", n) for n in range(6)])
        self.assertIn("Running worker (3 thread(s))", out)
        self.assertEqual(sorted(handled), [("work.a", n) for n in range(6)])

    def test_bad_concurrency_options_are_command_errors(self):
        for args, message in (
                (["--threads", "0"], "--threads must be at least 1, not 0"),
                (["--processes", "0"], "--processes must be at least 1, not 0"),
                (["--max-messages", "-1"], "--max-messages must be at least 0, not -1"),
                (["--max-messages-jitter", "-2"], "--max-messages-jitter must be at least 0"),
                (["--shutdown-timeout", "0"], "--shutdown-timeout must be more than 0")):
            with self.assertRaisesMessage(CommandError, message):
                call_command("runworker", *args)

    def test_nothing_left_to_listen_on(self):
        with self.assertRaisesMessage(CommandError, "No channels left to listen on"):
            call_command("runworker", "--only-channels", "nothing.*")


class RefusalTests(SimpleTestCase):
    def test_refuses_local_only_backend(self):
        with self.assertRaises(CommandError) as cm:
            call_command("runworker")
        message = str(cm.exception)
        self.assertIn("'default' (InMemoryChannelBackend) only works inside one process", message)
        self.assertIn("runserver", message)

    def test_unknown_alias_and_bad_config_are_command_errors(self):
        with self.assertRaisesMessage(CommandError, "No channel backend 'nope'"):
            call_command("runworker", "--alias", "nope")
        broken = {"default": {"BACKEND": "channels.backends.memory.InMemoryChannelBackend",
                              "ROUTING": "tests.nothing.routing"}}
        with override_settings(CHANNEL_BACKENDS=broken):
            with self.assertRaisesMessage(CommandError, "does not import"):
                call_command("runworker")
