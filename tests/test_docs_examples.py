"""The code the documentation shows (tests/docs_examples/) does what
the pages say it does."""

import configparser
import contextlib
import importlib
import importlib.util
import io
import logging.config
import os
import shlex
import sys

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management import get_commands, load_command_class
from django.test import SimpleTestCase, override_settings
from django.utils.log import configure_logging

from channels import Group, channel_backends, registry
from channels.backends import create_backend
from channels.checks import check_channel_backends, check_runserver_command
from channels.exceptions import ChannelFull, InvalidMessage
from channels.interfaces.config import ServerConfig
from channels.interfaces.server import CLOSE_WAIT
from channels.testing import ChannelTestCase, isolated_channel_backends
from channels.worker import Worker
from channels.worker.supervisor import STOP_GRACE
from tests.docs_examples import (
    concepts,
    consumers,
    live_processes,
    logging_settings,
    metered,
    production_settings,
    room_chat,
    sentinel_settings,
    settings,
    smoke_check,
)
from tests.support.worker_threads import wait_for, worker_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEPLOY = os.path.join(os.path.dirname(smoke_check.__file__), "deploy")
DOCS_BACKENDS = override_settings(CHANNEL_BACKENDS=settings.CHANNEL_BACKENDS)


class SettingsExampleTests(SimpleTestCase):
    def test_installed_apps_has_channels_above_staticfiles(self):
        self.assertIn("channels", settings.INSTALLED_APPS)
        with override_settings(INSTALLED_APPS=settings.INSTALLED_APPS):
            self.assertEqual(check_runserver_command(), [])

    def test_every_option_is_accepted_and_takes_effect(self):
        backend = create_backend("default", settings.CHANNEL_BACKENDS["default"])
        self.assertEqual(backend.expiry, 60)
        self.assertEqual(backend.group_expiry, 86400)
        self.assertEqual(backend.capacity_for("http.request"), 200)
        self.assertEqual(backend.capacity_for("!http.response.abc"), 20)
        self.assertEqual(backend.capacity_for("chat.log"), 100)
        self.assertIs(backend.registry.consumer_for_channel("chat.log"), consumers.log_line)
        self.assertIs(backend.registry.consumer_for_channel("text.count"), consumers.word_count)

    @DOCS_BACKENDS
    def test_system_check_passes(self):
        self.assertEqual(check_channel_backends(), [])


@DOCS_BACKENDS
class ConsumerExampleTests(ChannelTestCase):
    def test_word_count_answers_on_the_reply_channel(self):
        self.send_and_consume("text.count", {"text": "one two  three",
                                             "reply_channel": "!reply.1"})
        self.assertEqual(self.get_next_message("!reply.1", require=True)["count"], 3)

    def test_word_count_without_reply_channel_sends_nothing(self):
        self.send_and_consume("text.count", {"text": "one"})
        self.assertEqual(self.get_backend().receive_many(["!reply.1"]), (None, None))

    def test_log_line_logs_room_and_text(self):
        with self.assertLogs("tests.docs_examples.consumers", "INFO") as logs:
            self.send_and_consume("chat.log", {"room": "lobby", "text": "hi"})
        self.assertEqual(logs.records[0].getMessage(), "lobby: hi")


@DOCS_BACKENDS
class ConceptsExampleTests(SimpleTestCase):
    def setUp(self):
        self.enterContext(isolated_channel_backends())

    def test_count_words_through_a_worker_thread(self):
        self.enterContext(worker_threads(channel_backends["default"], None, 1))
        self.assertEqual(concepts.count_words("a b c d"), 4)

    def test_count_words_without_worker_times_out(self):
        with self.assertRaises(TimeoutError):
            concepts.count_words("a b", timeout=0.05)


@DOCS_BACKENDS
class DecoratorExampleTests(ChannelTestCase):
    def setUp(self):
        saved = list(registry.decorated)
        self.addCleanup(registry.decorated.__setitem__, slice(None), saved)
        sys.modules.pop("tests.docs_examples.decorated", None)
        self.decorated = importlib.import_module("tests.docs_examples.decorated")

    def test_both_channels_routed_without_routing_entry(self):
        routed = self.get_backend().registry
        for channel in ("reports.build", "reports.rebuild"):
            self.assertIs(routed.consumer_for_channel(channel), self.decorated.build_report)

    def test_build_report_tells_the_watchers(self):
        Group("report-watchers").add("!watcher.1")
        self.send_and_consume("reports.build", {"name": "weekly"})
        message = self.get_next_message("!watcher.1", require=True)
        self.assertEqual(message["text"], "Report weekly is ready")


def broken(message):
    raise RuntimeError("the consumer broke")


class LoggingExampleTests(SimpleTestCase):
    def setUp(self):
        # Put the suite's own logging back afterwards.
        self.addCleanup(configure_logging, django_settings.LOGGING_CONFIG,
                        django_settings.LOGGING)

    def test_consumer_exception_reaches_the_console_with_traceback(self):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr), isolated_channel_backends():
            logging.config.dictConfig(logging_settings.LOGGING)
            backend = channel_backends["default"]
            backend.registry.add_consumer(broken, ["docs.broken"])
            Worker(backend, channels=[]).handle("docs.broken", {})
        self.assertIn("Error in consumer broken for channel 'docs.broken'", stderr.getvalue())
        self.assertIn("RuntimeError: the consumer broke", stderr.getvalue())


class CustomBackendExampleTests(SimpleTestCase):
    def setUp(self):
        self.backend = create_backend("default", metered.CHANNEL_BACKENDS["default"])

    def test_option_from_settings_and_counting(self):
        self.assertIsInstance(self.backend, metered.MeteredChannelBackend)
        self.assertEqual(self.backend.meter_prefix, "chat.")
        self.backend.send("chat.log", {"text": "a"})
        self.backend.send_many([("chat.log", {"text": "b"}), ("other", {})])
        self.assertEqual(self.backend.sent, {"chat.log": 2})
        self.assertEqual(self.backend.receive_many(["chat.log"])[1], {"text": "a"})

    def test_full_channel_and_bad_input_are_not_counted(self):
        self.backend.send("chat.log", {})
        self.backend.send("chat.log", {})
        with self.assertRaises(ChannelFull):
            self.backend.send("chat.log", {})
        with self.assertRaises(InvalidMessage):
            self.backend.send("chat.log", {"when": object()})
        self.assertEqual(self.backend.sent, {"chat.log": 2})

    def test_unknown_option_is_refused(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "METER_PREFIXES"):
            create_backend("default", {"BACKEND": metered.CHANNEL_BACKENDS["default"]["BACKEND"],
                                       "METER_PREFIXES": "chat."})


@DOCS_BACKENDS
class SmokeCheckExampleTests(SimpleTestCase):
    def setUp(self):
        self.enterContext(isolated_channel_backends())

    def test_round_trip_through_a_worker(self):
        self.enterContext(worker_threads(channel_backends["default"], None, 1))
        self.assertLess(smoke_check.check_echo(timeout=5), 5)

    def test_no_worker_is_an_error_naming_the_alias(self):
        with self.assertRaisesMessage(RuntimeError, "No worker answered on backend 'default'"):
            smoke_check.check_echo(timeout=0.05)


@DOCS_BACKENDS
class LiveProcessesExampleTests(SimpleTestCase):
    def setUp(self):
        self.enterContext(isolated_channel_backends())

    def test_a_line_per_worker_process_and_interface_server(self):
        from channels.interfaces.threaded import start_server

        backend = channel_backends["default"]
        self.assertEqual(live_processes.describe_processes(), [])
        self.enterContext(worker_threads(backend, None, 2))
        handle = start_server(backend, "127.0.0.1", 0)
        self.addCleanup(handle.stop)
        wait_for(lambda: len(lines := live_processes.describe_processes()) == 2
                 and "2 thread(s)" in lines[0], timeout=20)
        worker, server = live_processes.describe_processes()
        self.assertRegex(worker, r"^worker [0-9a-f]{16} on .+ \(pid \d+\): 2 thread\(s\), "
                                 r"0 handled, 0 failed, 0 in hand$")
        self.assertRegex(server, r"^interface server [0-9a-f]{16} on .+: 0 HTTP and 0 "
                                 r"WebSocket connection\(s\)$")


class ProductionSettingsExampleTests(SimpleTestCase):
    def test_redis_settings_build_a_shared_backend(self):
        if importlib.util.find_spec("channels.backends.redis") is None:
            self.skipTest("the Redis backend (issue 3) is not on this branch yet")
        env = {"CHANNELS_REDIS_HOSTS": "redis://127.0.0.1:1/0 redis://127.0.0.1:2/0"}
        with mock_environ(env):
            module = importlib.reload(production_settings)
        self.addCleanup(importlib.reload, production_settings)
        self.assertEqual(module.CHANNEL_BACKENDS["default"]["HOSTS"],
                         ["redis://127.0.0.1:1/0", "redis://127.0.0.1:2/0"])
        backend = create_backend("default", module.CHANNEL_BACKENDS["default"])
        self.addCleanup(backend.close)
        self.assertFalse(backend.local_only)
        self.assertEqual(backend.capacity_for("!x"), 20)


class SentinelSettingsTests(SimpleTestCase):
    def test_two_sentinel_managed_shards(self):
        config = sentinel_settings.CHANNEL_BACKENDS["default"]
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        sentinels = (("10.0.0.21", 26379), ("10.0.0.22", 26379), ("10.0.0.23", 26379))
        self.assertEqual([(a.sentinel.sentinels, a.sentinel.service_name)
                          for a in backend.addresses],
                         [(sentinels, "shard-a"), (sentinels, "shard-b")])
        self.assertEqual({a.options["password"] for a in backend.addresses}, {"s3cret"})
        self.assertEqual({a.sentinel.options["password"] for a in backend.addresses},
                         {"sentinel-s3cret"})
        with override_settings(CHANNEL_BACKENDS=sentinel_settings.CHANNEL_BACKENDS):
            self.assertEqual(check_channel_backends(), [])


class DeploymentFilesTests(SimpleTestCase):
    """The unit files run commands that exist, with options they take, on the
    address the proxy forwards to."""

    def unit(self, name):
        parser = configparser.ConfigParser(interpolation=None, strict=True)
        parser.optionxform = str
        with open(os.path.join(DEPLOY, name)) as f:
            parser.read_file(f)
        return parser

    def command_line(self, name):
        argv = shlex.split(self.unit(name)["Service"]["ExecStart"])
        self.assertEqual(argv[1], "manage.py")
        return argv[2], argv[3:]

    def check_parses(self, command, args):
        commands = get_commands()
        if command not in commands:
            self.skipTest(f"manage.py {command} is not on this branch yet")
        cmd = load_command_class(commands[command], command)
        cmd.create_parser("manage.py", command).parse_args(args)
        return cmd

    def test_worker_unit(self):
        # One supervisor per machine, stopped with SIGTERM and given the
        # time its children's shutdown takes, reloaded with SIGHUP.
        unit = self.unit("channels-worker.service")
        self.assertEqual(unit["Service"]["KillSignal"], "SIGTERM")
        self.assertEqual(unit["Service"]["ExecReload"], "/bin/kill -HUP $MAINPID")
        command, args = self.command_line("channels-worker.service")
        parser = self.check_parses(command, args).create_parser("manage.py", command)
        options = parser.parse_args(args)
        self.assertIsNotNone(options.processes)
        self.assertGreater(int(unit["Service"]["TimeoutStopSec"]),
                           options.shutdown_timeout + STOP_GRACE)

    def test_interface_server_unit_waits_for_its_shutdown(self):
        # systemd kills what has not exited after TimeoutStopSec: that must
        # not cut off the requests that the server's shutdown lets finish.
        unit = self.unit("channels-wsserver.service")
        self.assertEqual(unit["Service"]["KillSignal"], "SIGTERM")
        command, args = self.command_line("channels-wsserver.service")
        parser = self.check_parses(command, args).create_parser("manage.py", command)
        options = parser.parse_args(args)
        shutdown = options.shutdown_timeout or ServerConfig().shutdown_timeout
        self.assertGreater(int(unit["Service"]["TimeoutStopSec"]), shutdown + CLOSE_WAIT + 5)

    def test_proxy_forwards_to_the_interface_server(self):
        command, args = self.command_line("channels-wsserver.service")
        with open(os.path.join(DEPLOY, "nginx.conf")) as f:
            self.assertIn(f"proxy_pass http://{args[0]};", f.read())
        self.assertIn("--proxy-headers", args)
        self.check_parses(command, args)

    def test_interface_server_may_open_more_files_than_it_has_connections(self):
        # Below MAX_CONNECTIONS (and its reserve), the server answers 503
        # sooner than the default limit of 1024 would make it.
        from channels.interfaces.config import ServerConfig
        from channels.interfaces.server import FD_RESERVE

        limit = int(self.unit("channels-wsserver.service")["Service"]["LimitNOFILE"])
        self.assertGreater(limit, ServerConfig().max_connections + FD_RESERVE)


@contextlib.contextmanager
def mock_environ(values):
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class ReadmeExampleTests(ChannelTestCase):
    def setUp(self):
        saved = list(registry.decorated)
        self.addCleanup(registry.decorated.__setitem__, slice(None), saved)
        sys.modules.pop("tests.docs_examples.readme", None)
        self.readme = importlib.import_module("tests.docs_examples.readme")

    def test_readme_shows_this_code(self):
        with open(self.readme.__file__) as f:
            source = f.read()
        example = source.split("# docs: start\n")[1].split("# docs: end")[0]
        with open(os.path.join(ROOT, "README.rst")) as f:
            readme = f.read()
        indented = "".join("    " + line if line.strip() else line
                           for line in example.splitlines(keepends=True))
        self.assertIn(indented, readme)

    def test_messages_reach_every_member(self):
        for n in (1, 2):
            self.send_and_consume("websocket.connect", {"reply_channel": f"!ws.{n}",
                                                        "path": "/", "order": 0})
            self.assertEqual(self.get_next_message(f"!ws.{n}", require=True).content,
                             {"accept": True})
        self.send_and_consume("websocket.receive", {"reply_channel": "!ws.1",
                                                    "text": "hello", "order": 1})
        for n in (1, 2):
            self.assertEqual(self.get_next_message(f"!ws.{n}", require=True)["text"], "hello")


@override_settings(CHANNEL_BACKENDS={"default": {
    "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
    "ROUTING": room_chat.channel_routing}})
class RoomChatExampleTests(ChannelTestCase):
    """docs/coming-from-asgi-channels.rst's chat, this project's side."""

    def socket(self, path):
        reply = f"!websocket.send.{path.strip('/').replace('/', '-')}-{self.sockets}"
        self.sockets += 1
        self.send_and_consume("websocket.connect", {"reply_channel": reply, "path": path})
        # The first answer decides (the worker adds an accept after any).
        answers = []
        while (answer := self.get_next_message(reply)) is not None:
            answers.append(answer.content)
        return reply, answers[0]

    def setUp(self):
        self.sockets = 0

    def test_everyone_in_the_room_hears_it_and_no_one_else(self):
        ann, accepted = self.socket("/ws/chat/lobby/")
        self.assertEqual(accepted, {"accept": True})
        bob, _ = self.socket("/ws/chat/lobby/")
        cat, _ = self.socket("/ws/chat/kitchen/")
        self.send_and_consume("websocket.receive", {"reply_channel": ann, "order": 1,
                                                    "path": "/ws/chat/lobby/", "text": "hi"})
        for listener in (ann, bob):
            self.assertEqual(self.get_next_message(listener).content, {"text": "hi"})
        self.assertIsNone(self.get_next_message(cat))

    def test_other_paths_are_refused_and_leaving_stops_messages(self):
        _, refused = self.socket("/ws/elsewhere/")
        self.assertEqual(refused, {"accept": False})
        ann, _ = self.socket("/ws/chat/lobby/")
        self.send_and_consume("websocket.disconnect", {"reply_channel": ann, "order": 1,
                                                       "path": "/ws/chat/lobby/", "code": 1000})
        self.assertEqual(Group("chat-lobby").channels(), [])
