"""docs/getting-started.rst, followed as a reader would: a new project from
``django-admin startproject``, made of exactly the files the page includes
(docs/guide/), run under ``runserver`` and then in production shape (Redis,
``runwsserver``, ``runworker``, DEBUG off, after ``collectstatic``), with
two people chatting in headless Chromium each time.

The project is built once for the class; each run gets its own room."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
from pathlib import Path

import requests

from tests.support.browsers import ChatUser, skip_without_browser, start_browser
from tests.support.redis_servers import RedisServer
from tests.support.server_process import ROOT, ServerProcess, manage

DOCS = Path(ROOT) / "docs"
PAGE = DOCS / "getting-started.rst"
GUIDE = DOCS / "guide"
SETTINGS = "mysite.settings"
PASSWORD = "a-chat-password"
# What `startapp` and `makemigrations` write: the page does not show them.
GENERATED = {"chat/__init__.py", "chat/apps.py", "chat/migrations/__init__.py",
             "chat/migrations/0001_initial.py"}
# Captions of the settings the page adds to mysite/settings.py.
REPLACE_APPS = "mysite/settings.py: INSTALLED_APPS"
APPEND = "mysite/settings.py: at the end"

INCLUDE = re.compile(r"^\.\. literalinclude:: (guide/\S+)\n((?:   :.*\n)*)", re.M)


def included_files() -> list[tuple[Path, str]]:
    """The page's files, in its order: (the file, its caption)."""
    found = []
    for path, options in INCLUDE.findall(PAGE.read_text()):
        caption = re.search(r":caption: (.+)", options)
        found.append((DOCS / path, caption.group(1) if caption else ""))
    return found


def build_project(directory: Path, env: dict) -> Path:
    """Do what the page says, in ``directory``; returns the project's path."""
    def run(*args, cwd):
        subprocess.run([sys.executable, *args], cwd=cwd, env=env, check=True,
                       capture_output=True, text=True, timeout=120)

    run("-m", "django", "startproject", "mysite", cwd=directory)  # django-admin
    project = directory / "mysite"
    run("manage.py", "startapp", "chat", cwd=project)
    settings = project / "mysite" / "settings.py"
    for source, caption in included_files():
        text = source.read_text()
        if caption == REPLACE_APPS:
            old = settings.read_text()
            new, count = re.subn(r"^INSTALLED_APPS = \[\n.*?^\]\n", text, old,
                                 flags=re.M | re.S)
            assert count == 1, "startproject's INSTALLED_APPS not found"
            settings.write_text(new)
        elif caption == APPEND:
            settings.write_text(settings.read_text() + "\n" + text)
        else:
            target = project / caption
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    run("manage.py", "makemigrations", "chat", cwd=project)
    run("manage.py", "migrate", cwd=project)
    for username in ("alice", "bob"):
        subprocess.run([sys.executable, "manage.py", "createsuperuser", "--noinput",
                        "--username", username, "--email", f"{username}@example.com"],
                       cwd=project, env={**env, "DJANGO_SUPERUSER_PASSWORD": PASSWORD},
                       check=True, capture_output=True, timeout=60)
    return project


class GuidePageTests(unittest.TestCase):
    """The page shows every file of the guide, each whole, and no other
    code than shell commands."""

    def test_every_file_is_shown_whole(self):
        text = PAGE.read_text()
        self.assertEqual(set(re.findall(r"^\.\. code-block:: *(\S*)", text, re.M)), {"console"})
        included = [source for source, _ in included_files()]
        self.assertEqual(len(included), len(set(included)), "a file is shown twice")
        on_disk = {path for path in GUIDE.rglob("*") if path.is_file()
                   and "__pycache__" not in path.parts
                   and path.relative_to(GUIDE).as_posix() not in GENERATED}
        self.assertEqual(set(included), on_disk)
        # Whole: no option that shows only a part.
        for options in re.findall(r"^\.\. literalinclude:: .*\n((?:   :.*\n)*)", text, re.M):
            self.assertNotRegex(options, r":(lines|pyobject|start-after|end-before|"
                                         r"start-at|end-at):")

    def test_captions_name_where_each_file_goes(self):
        for source, caption in included_files():
            relative = source.relative_to(GUIDE).as_posix()
            if relative.startswith("mysite/settings_"):
                self.assertIn(caption, (REPLACE_APPS, APPEND))
            else:
                self.assertEqual(caption, relative)


@skip_without_browser
class GuideProjectTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        tmp = tempfile.mkdtemp(prefix="channels-guide-")
        cls.addClassCleanup(shutil.rmtree, tmp, ignore_errors=True)
        # Only what the reader's virtual environment has: channels as
        # installed, no checkout on the path.
        cls.env = {key: value for key, value in os.environ.items()
                   if key not in ("DJANGO_SETTINGS_MODULE", "PYTHONPATH")}
        cls.env["PYTHONUNBUFFERED"] = "1"
        cls.project = build_project(Path(tmp), cls.env)
        cls.browsers = [start_browser(cls), start_browser(cls)]

    def serve(self, command, ready, **env):
        """``manage.py <command>`` in the project, as the page runs it."""
        process = ServerProcess(SETTINGS, *(["--noreload"] if command == "runserver" else []),
                                env={"PYTHONPATH": "", **env}, cwd=str(self.project),
                                command=command, ready=ready)
        self.addCleanup(process.kill)
        return process

    def chat(self, base_url, room):
        """Alice creates ``room``, sees Bob come in, and they say hello to
        each other."""
        alice, bob = (ChatUser(browser, base_url) for browser in self.browsers)
        for browser in self.browsers:
            self.addCleanup(browser.get, "about:blank")  # closes the socket
        alice.log_in("alice", PASSWORD)
        bob.log_in("bob", PASSWORD)
        alice.create_room(room)
        bob.enter_room(room)
        alice.wait_for_online(["alice", "bob"])
        alice.say("Hello Bob")
        bob.wait_for_message("alice: Hello Bob")
        bob.say("Hi Alice")
        alice.wait_for_message("bob: Hi Alice")
        self.assertEqual(alice.messages(), ["alice: Hello Bob", "bob: Hi Alice"])

    def test_under_runserver(self):
        server = self.serve("runserver", "Quit the server with")
        self.assertIn("Channel backend 'default' (InMemoryChannelBackend)", server.output)
        self.chat(server.url, "development")
        server.wait_for('"GET /static/chat/chat.js HTTP/1.1" 200')
        server.wait_for('"GET /static/channels/client.js HTTP/1.1" 200')
        self.assertNotIn("favicon", server.output)
        self.assertEqual(server.stop(), 0, server.output)

    def test_in_production_shape(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        env = {"CHANNELS_REDIS_HOSTS": f"{redis.url}/0", "DJANGO_DEBUG": "0"}
        manage(SETTINGS, "collectstatic", "--noinput", cwd=str(self.project),
               env={"PYTHONPATH": "", **env})
        server = self.serve("runwsserver", "Interface server listening", **env)
        server.wait_for("Static files at /static/ from STATIC_ROOT (")
        worker = self.serve("runworker", "Running worker", **env)
        self.assertIn("(RedisChannelBackend)", worker.output)

        script = requests.get(f"{server.url}/static/chat/chat.js", timeout=5)
        self.assertEqual(script.status_code, 200)
        self.assertEqual(script.headers["Cache-Control"], "max-age=60, public")
        # Module scripts run only when served as JavaScript.
        client = requests.get(f"{server.url}/static/channels/client.js", timeout=5)
        self.assertEqual(client.status_code, 200)
        self.assertIn("javascript", client.headers["Content-Type"])
        missing = requests.get(f"{server.url}/nowhere/", timeout=5)
        self.assertIn("Not Found", missing.text)  # DEBUG is off: no debug page
        self.assertNotIn("URLconf", missing.text)

        self.chat(server.url, "production")
        server.wait_for('"GET /static/chat/chat.js HTTP/1.1" 200')
        server.wait_for('"GET /static/channels/client.js HTTP/1.1" 200', count=2)
        server.wait_for('"GET /ws/chat/production/ HTTP/1.1" 101')
        self.assertNotIn("favicon", server.output)
        self.assertEqual(worker.stop(), 0, worker.output)
        self.assertEqual(server.stop(), 0, server.output)

    def test_users_of_a_killed_server_go_offline(self):
        """Two runwsserver, alice on one and bob on the other: when bob's
        is killed (SIGKILL), alice sees him leave within a heartbeat TTL
        (15 s by default)."""
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        env = {"CHANNELS_REDIS_HOSTS": f"{redis.url}/0"}  # DEBUG: static from the apps
        kept = self.serve("runwsserver", "Interface server listening", **env)
        doomed = self.serve("runwsserver", "Interface server listening", **env)
        self.serve("runworker", "Running worker", **env)
        alice = ChatUser(self.browsers[0], kept.url)
        bob = ChatUser(self.browsers[1], doomed.url)
        for browser in self.browsers:
            self.addCleanup(browser.get, "about:blank")
        alice.log_in("alice", PASSWORD)
        bob.log_in("bob", PASSWORD)
        alice.create_room("outage")
        bob.enter_room("outage")
        alice.wait_for_online(["alice", "bob"])
        doomed.kill()
        killed = time.monotonic()
        alice.wait_for_online(["alice"], timeout=60)
        self.assertLess(time.monotonic() - killed, 15 + 10)
