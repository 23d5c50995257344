"""``manage.py channels_status``: on the in-memory backend (in this process,
where it sees a worker thread, and from a process of its own, where it says
why it sees nothing), and on three throwaway Redis shards with a live
``runworker`` process, one shard stopped."""

import io
import json
import os
import re
import signal
import subprocess
import sys
import time

from django.core.management import CommandError, call_command
from django.test import SimpleTestCase

from channels import channel_backends
from channels.backends.base import BaseChannelBackend
from channels.backends.memory import InMemoryChannelBackend
from channels.status.report import collect
from channels.status.text import render
from channels.testing import isolated_channel_backends
from tests.support.processes import ROOT, Process, django_env, start_worker
from tests.support.redis_servers import (
    RedisServer,
    backend_config,
    redis_backend,
    shared_servers,
)
from tests.support.worker_threads import wait_for, worker_threads

SEES_NOTHING = "this process cannot see another's"


def documented_example():
    """The example output in docs/operations.rst."""
    with open(os.path.join(ROOT, "docs", "operations.rst")) as page:
        text = page.read()
    block = text.split("$ python manage.py channels_status\n", 1)[1].split("\nOptions:", 1)[0]
    return "\n".join(line[4:] for line in block.splitlines())


def headings(text):
    """The titles and column headings of a text report, without the figures
    and widths that vary."""
    lines = text.splitlines()
    titles = [re.sub(r"\(.*\)|\d+", "(...)", line) for line in lines
              if line and not line.startswith(" ")][1:]  # not the dated first line
    columns = [line.split() for line in lines if re.match(r"  (#|channel|id) ", line)]
    return titles, columns


def command(env, *args, timeout=60):
    return subprocess.run([sys.executable, "-m", "django", "channels_status", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


class MemoryTests(SimpleTestCase):
    def setUp(self):
        self.enterContext(isolated_channel_backends())

    def status(self, *args):
        out = io.StringIO()
        call_command("channels_status", *args, stdout=out)
        return out.getvalue()

    def test_in_this_process_it_shows_what_the_backend_holds(self):
        backend = channel_backends["default"]
        for n in range(4):
            backend.send("chat.log", {"n": n})
        with worker_threads(backend, ["tests.echo"], 1):
            wait_for(lambda: json.loads(self.status("--json"))["workers"], timeout=20)
            text = self.status()
            report = json.loads(self.status("--json"))
        self.assertRegex(text, r"chat\.log +4 +100")
        self.assertIn("Workers (1 running)", text)
        self.assertIn("tests.echo", text)
        self.assertNotIn(SEES_NOTHING, text)
        self.assertEqual(report["shards"][0]["up"], True)
        [worker] = report["workers"]
        self.assertEqual(worker["channels"], ["tests.echo"])
        self.assertEqual(report["notes"], [])

    def test_from_a_process_of_its_own_it_says_why_it_sees_nothing(self):
        env = django_env("tests.settings")
        result = command(env)
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(SEES_NOTHING, result.stdout)
        self.assertIn("Workers (0 running)", result.stdout)
        result = command(env, "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        self.assertIn(SEES_NOTHING, report["notes"][0])

    def test_an_unknown_backend_is_an_error(self):
        with self.assertRaisesMessage(CommandError, "No channel backend 'nope'"):
            self.status("--backend", "nope")
        result = command(django_env("tests.settings"), "--backend", "nope")
        self.assertEqual(result.returncode, 1)
        self.assertIn("No channel backend 'nope'", result.stderr)

    def test_watch_reports_again_until_ctrl_c(self):
        watcher = subprocess.Popen(
            [sys.executable, "-m", "django", "channels_status", "--json", "--watch", "0.1"],
            cwd=ROOT, env=django_env("tests.settings"), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.addCleanup(watcher.kill)
        first = json.loads(watcher.stdout.readline())
        second = json.loads(watcher.stdout.readline())
        self.assertGreater(second["time"], first["time"])
        watcher.send_signal(signal.SIGINT)
        rest, errors = watcher.communicate(timeout=30)
        self.assertEqual(watcher.returncode, 0, errors)
        self.assertNotIn("Traceback", errors)
        for line in rest.splitlines():  # what it printed meanwhile: JSON lines only
            self.assertIn("shards", json.loads(line))

    def test_watch_takes_a_positive_number_of_seconds(self):
        result = command(django_env("tests.settings"), "--watch", "0")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--watch", result.stderr)


class RedisTests(SimpleTestCase):
    """Two shared shards and one of the test's own, which it stops."""

    def setUp(self):
        self.third = RedisServer().start()
        self.addCleanup(self.third.cleanup)
        servers = [*shared_servers(2), self.third]
        self.config = backend_config(servers, routing="tests.routing.channel_routing")
        self.backend = redis_backend(servers, routing="tests.routing.channel_routing",
                                     prefix=self.config["PREFIX"])
        self.addCleanup(self.backend.close)
        survivors = redis_backend(shared_servers(2), prefix=self.config["PREFIX"])
        self.addCleanup(survivors.close)
        self.addCleanup(survivors.flush)
        self.env = django_env("tests.interface_redis_settings",
                              CHANNELS_TEST_BACKEND=json.dumps(self.config))

    def report(self):
        result = command(self.env, "--json")
        self.assertEqual(result.returncode, 0, result.stderr)
        return json.loads(result.stdout)

    def wait_for_report(self, condition, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            report = self.report()
            if condition(report):
                return report
            if time.monotonic() > deadline:
                self.fail(f"no report met the condition; the last:\n{report}")

    def test_shards_channels_a_live_worker_and_server(self):
        worker = start_worker(self.env, "--only-channels", "tests.echo", "http.request")
        self.addCleanup(worker.stop)
        server = Process([sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0"],
                         self.env)
        self.addCleanup(server.stop)
        server.wait_for_line(r"http://127\.0\.0\.1:(\d+)/")
        for n in range(5):
            self.backend.send("jobs", {"n": n})
        for n in range(3):
            self.backend.send("tests.echo", {"n": n})  # no reply channel: run, no answer

        report = self.wait_for_report(lambda report: report["interface_servers"] and any(
            worker["handled"] == 3 for worker in report["workers"]))
        self.assertTrue({"shards", "channels", "workers", "interface_servers"} <= set(report))
        self.assertEqual([shard["up"] for shard in report["shards"]], [True, True, True])
        self.assertEqual([shard["address"] for shard in report["shards"]],
                         [url.removeprefix("redis://") for url in self.config["HOSTS"]])
        channels = {channel["name"]: channel for channel in report["channels"]}
        self.assertEqual(channels["jobs"]["total"], 5)
        self.assertEqual(len(channels["jobs"]["depth"]), 3)
        self.assertEqual(channels["tests.echo"]["total"], 0)
        [live] = report["workers"]
        self.assertEqual(live["pid"], worker.popen.pid)
        self.assertEqual(live["channels"], ["http.request", "tests.echo"])
        self.assertEqual(live["errors"], 0)
        self.assertGreaterEqual(live["busy"], 0)
        [interface] = report["interface_servers"]
        self.assertEqual(interface["pid"], server.popen.pid)
        self.assertEqual(interface["connections"], {"http": 0, "websocket": 0})

        text = command(self.env).stdout
        self.assertIn("Shards (3 of 3 up)", text)
        self.assertIn("Workers (1 running)", text)
        self.assertIn(str(worker.popen.pid), text)
        self.assertRegex(text, r"jobs +5 ")

        self.third.stop()
        report = self.report()
        self.assertEqual([shard["up"] for shard in report["shards"]], [True, True, False])
        self.assertIn("unreachable", report["shards"][2]["error"])
        self.assertIsNone({channel["name"]: channel for channel in report["channels"]}
                          ["jobs"]["depth"][2])
        # Every shard holds every heartbeat: the worker is still seen.
        self.assertEqual([live["pid"] for live in report["workers"]], [worker.popen.pid])
        text = command(self.env).stdout
        self.assertIn("Shards (2 of 3 up)", text)
        self.assertIn("DOWN", text)
        self.assertEqual(headings(text), headings(documented_example()))

    def test_a_stopped_worker_is_gone_from_the_report(self):
        worker = start_worker(self.env)
        self.wait_for_report(lambda report: len(report["workers"]) == 1)
        self.assertEqual(worker.stop(), 0)
        self.assertEqual(self.report()["workers"], [])


class WithoutStatus(InMemoryChannelBackend):
    """A backend that predates status(), as a third party's may."""

    _status = BaseChannelBackend._status


class ReportTests(SimpleTestCase):
    def test_a_backend_without_status_still_lists_its_processes(self):
        backend = WithoutStatus(routing={"tests.echo": "channels.consumers.echo"})
        with worker_threads(backend, ["tests.echo"], 1):
            wait_for(lambda: collect(backend)["workers"], timeout=20)
            report = collect(backend)
        self.assertEqual(report["shards"], [])
        self.assertEqual(report["channels"], [])
        self.assertEqual(report["workers"][0]["channels"], ["tests.echo"])
        self.assertIn("does not implement status()", report["notes"][0])
        self.assertIn("Shards (0 of 0 up)", render(report))

    def test_a_backend_without_heartbeats_says_so(self):
        backend = InMemoryChannelBackend()
        backend.keeps_heartbeats = False
        report = collect(backend)
        self.assertEqual(report["workers"], [])
        self.assertIn("keeps no heartbeats", report["notes"][0])
