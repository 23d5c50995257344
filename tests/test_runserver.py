"""``manage.py runserver`` as a developer runs it: a child process on a free
port, real HTTP and WebSocket clients, Ctrl-C to stop it."""

import io
import json
import os
import random
import re
import socket
import struct
import tempfile
import time
import unittest
from unittest import mock

import requests
import websocket
from django.core import checks
from django.test import SimpleTestCase, override_settings

from channels.checks import check_runserver_command
from channels.management.commands.runserver import HIDE_WARNING, PRODUCTION_WARNING
from channels.management.commands.runserver import Command as RunserverCommand
from tests.support.chat_socket import next_chat_message, say
from tests.support.redis_servers import RedisServer
from tests.support.server_process import ROOT, ServerProcess, manage

DEMO = "testproject.settings"
PLAIN = "tests.plainproject.settings"
GOING_AWAY = 1001


def close_code(ws):
    """The code of the close frame the server sends next (read as a raw
    frame: answering it could meet a server that has already gone)."""
    while True:
        frame = ws.recv_frame()
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return struct.unpack("!H", frame.data[:2])[0]


class DemoProjectTests(unittest.TestCase):
    """The demo project under runserver, on the in-memory backend."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.env = {"DJANGO_DB": os.path.join(cls.tmp.name, "db.sqlite3")}
        manage(DEMO, "migrate", "--noinput", env=cls.env)
        cls.server = ServerProcess(DEMO, "--noreload", env=cls.env)
        cls.addClassCleanup(cls.server.kill)

    def test_banner(self):
        output = self.server.output
        self.assertIn(f"Starting development server at {self.server.url}/", output)
        self.assertIn("Channel backend 'default' (InMemoryChannelBackend), "
                      "4 worker thread(s).", output)

    def test_page_and_one_log_line_per_request(self):
        response = requests.get(f"{self.server.url}/hello/", timeout=5)
        self.assertEqual((response.status_code, response.text), (200, "Hello, world!\n"))
        self.server.wait_for('"GET /hello/ HTTP/1.1" 200 14')

    def test_static_files_when_debug(self):
        response = requests.get(f"{self.server.url}/static/chat/chat.js", timeout=5)
        self.assertEqual(response.status_code, 200)
        self.assertIn('import { connect } from "channels";', response.text)
        missing = requests.get(f"{self.server.url}/static/chat/nothing.js", timeout=5)
        self.assertEqual(missing.status_code, 404)

    def test_static_path_traversal_is_404_at_once(self):
        # It leaked nothing before either, but left the client waiting
        # HTTP_TIMEOUT (60 s) for a 504: the raw socket's 10 s would run out.
        for path in ("/static/../settings.py", "/static/chat/../../../etc/passwd",
                     "/static/..%2f..%2fmanage.py"):
            with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as sock:
                sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                             f"Connection: close\r\n\r\n".encode())
                head = sock.recv(65536)
            self.assertTrue(head.startswith(b"HTTP/1.1 404 "), (path, head[:100]))
        self.assertEqual(requests.get(f"{self.server.url}/hello/", timeout=5).status_code, 200)

    def test_head_has_the_headers_of_get_and_no_body(self):
        url = f"{self.server.url}/static/chat/chat.js"
        with requests.Session() as browser:
            head = browser.head(url, timeout=5)
            get = browser.get(url, timeout=5)  # on the same connection
        self.assertEqual((head.status_code, head.content), (200, b""))
        self.assertEqual(head.headers["Content-Length"], get.headers["Content-Length"])
        self.assertEqual(len(get.content), int(get.headers["Content-Length"]))
        self.server.wait_for('"HEAD /static/chat/chat.js HTTP/1.1" 200 -')

    def test_websocket_echo_and_log_lines(self):
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.server.port}/ws/echo/",
                                         origin=self.server.url, timeout=5)
        ws.send("ping")
        self.assertEqual(ws.recv(), "ping")
        ws.send_binary(b"\x00\x01")
        self.assertEqual(ws.recv(), b"\x00\x01")
        ws.close()
        self.server.wait_for('"GET /ws/echo/ HTTP/1.1" 101 -')
        self.server.wait_for('"WSDISCONNECT /ws/echo/ HTTP/1.1" 1000 -')

    def test_foreign_origin_is_refused(self):
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(f"ws://127.0.0.1:{self.server.port}/ws/echo/",
                                        origin="http://evil.example", timeout=5)
        self.assertEqual(refused.exception.status_code, 403)


class RunserverOptionsTests(unittest.TestCase):
    def setUp(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        self.env = {"DJANGO_DB": os.path.join(tmp.name, "db.sqlite3")}

    def start(self, *args, **kwargs):
        server = ServerProcess(DEMO, *args, env=self.env, **kwargs)
        self.addCleanup(server.kill)
        return server

    def test_verbosity_2_shows_each_consumer_run(self):
        server = self.start("--noreload", "--worker-threads", "2", "-v", "2")
        self.assertIn("2 worker thread(s)", server.output)
        requests.get(f"{server.url}/hello/", timeout=5)
        server.wait_for("http.request -> ")

    def test_workers_is_the_old_name_of_worker_threads(self):
        parser = RunserverCommand().create_parser("manage.py", "runserver")
        for option in ("--worker-threads", "--workers"):
            self.assertEqual(parser.parse_args([option, "3"]).workers, 3)
        self.assertEqual(parser.parse_args([]).workers, 4)

    def test_static_files_without_debug_only_with_insecure(self):
        self.env["DJANGO_DEBUG"] = "0"
        for args, status in (((), 404), (("--insecure",), 200)):
            server = self.start("--noreload", *args)
            response = requests.get(f"{server.url}/static/chat/chat.js", timeout=5)
            self.assertEqual(response.status_code, status, args)
            server.kill()

    def test_ctrl_c_closes_websockets_and_exits(self):
        server = self.start()  # with the autoreloader, as by default
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws/echo/",
                                         origin=server.url, timeout=10)
        self.addCleanup(ws.close)
        started = time.monotonic()
        self.assertEqual(server.stop(), 0, server.output)
        self.assertNotIn("Traceback", server.output)
        self.assertEqual(close_code(ws), GOING_AWAY)
        self.assertLess(time.monotonic() - started, 10)

    def test_second_ctrl_c_does_not_cut_the_shutdown_short(self):
        server = self.start("--noreload")
        ws = websocket.create_connection(f"ws://127.0.0.1:{server.port}/ws/echo/",
                                         origin=server.url, timeout=10)
        self.addCleanup(ws.close)
        self.assertEqual(server.stop(presses=2), 0, server.output)
        self.assertEqual(close_code(ws), GOING_AWAY)
        self.assertNotIn("Traceback", server.output)

    def test_ctrl_c_answers_a_request_still_running_503_not_a_reset(self):
        # The test consumers (tests.interface_consumers): /hold/ runs until
        # its http.disconnect. Requests in progress get 5 s, then 503.
        backend = {"BACKEND": "channels.backends.memory.InMemoryChannelBackend",
                   "ROUTING": "tests.interface_consumers.routing"}
        server = ServerProcess("tests.interface_redis_settings", "--noreload", "-v", "2",
                               env={"CHANNELS_TEST_BACKEND": json.dumps(backend)})
        self.addCleanup(server.kill)
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"GET /hold/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
            server.wait_for("http.request -> ")
            self.assertEqual(server.stop(timeout=30), 0, server.output)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        self.assertTrue(response.startswith(b"HTTP/1.1 503 "), response)
        self.assertIn(b"connection: close", response.lower())
        # The view heard its http.disconnect, so no worker was left behind.
        self.assertIn("http.disconnect -> ", server.output)
        self.assertNotIn("still runs a consumer", server.output)
        self.assertNotIn("Traceback", server.output)

    def test_reloads_on_code_change(self):
        server = self.start()
        views = os.path.join(ROOT, "testproject", "testproject", "views.py")
        stat = os.stat(views)
        try:
            # Later modification times, as an editor's saves leave, until the
            # reloader (which polls every second) has seen one.
            for later in range(1, 20):
                os.utime(views, (stat.st_atime, stat.st_mtime + later))
                try:
                    server.wait_for("views.py changed, reloading.", timeout=1)
                    break
                except AssertionError:
                    pass
            server.wait_for("Quit the server with", count=2)
        finally:
            os.utime(views, (stat.st_atime, stat.st_mtime))
        response = requests.get(f"{server.url}/hello/", timeout=5)
        self.assertEqual(response.status_code, 200)

    def test_noworker_needs_a_networked_backend(self):
        result = manage(DEMO, "runserver", "--noreload", "--noworker", "127.0.0.1:0",
                        env=self.env, check=False, timeout=30)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("--noworker needs a channel backend that other processes can share",
                      result.stderr)

    def test_port_in_use(self):
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            result = manage(DEMO, "runserver", "--noreload", f"127.0.0.1:{port}",
                            env=self.env, check=False, timeout=30)
        self.assertEqual(result.returncode, 1)
        self.assertIn("Error: That port is already in use.", result.stderr)


class NetworkedBackendTests(unittest.TestCase):
    """The demo as in production: the Redis backend (CHANNELS_REDIS_HOSTS),
    runserver --noworker for HTTP and WebSocket, a runworker process for the
    consumers."""

    def test_noworker_with_a_runworker_process(self):
        redis_server = RedisServer().start()
        self.addCleanup(redis_server.cleanup)
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        env = {"DJANGO_DB": os.path.join(tmp.name, "db.sqlite3"),
               "CHANNELS_REDIS_HOSTS": f"{redis_server.url}/0"}
        manage(DEMO, "migrate", "--noinput", env=env)
        manage(DEMO, "demo_users", env=env)
        server = ServerProcess(DEMO, "--noreload", "--noworker", env=env)
        self.addCleanup(server.kill)
        self.assertIn("(RedisChannelBackend), no workers", server.output)
        worker = ServerProcess(DEMO, command="runworker", ready="Running worker", env=env)
        self.addCleanup(worker.kill)

        self.assertEqual(requests.get(f"{server.url}/hello/", timeout=5).status_code, 200)
        # Static files too: the interface server answers them, not a worker.
        script = requests.get(f"{server.url}/static/chat/chat.js", timeout=5)
        self.assertEqual(script.status_code, 200)
        browser = requests.Session()
        browser.get(f"{server.url}/login/", timeout=5)
        browser.post(f"{server.url}/login/", timeout=5, data={
            "username": "alice", "password": "demo-password",
            "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
        ws = websocket.create_connection(
            f"ws://127.0.0.1:{server.port}/ws/chat/lobby/", origin=server.url, timeout=5,
            cookie=f"sessionid={browser.cookies['sessionid']}")
        self.addCleanup(ws.close)
        say(ws, "over Redis")
        message = next_chat_message(ws)
        self.assertEqual((message["user"], message["text"]), ("alice", "over Redis"))
        self.assertEqual(worker.stop(), 0, worker.output)


def exercise(base):
    """Use a plain Django site as a browser would; what was seen, less what
    differs from run to run (tokens, dates, the Server header)."""
    seen = []
    browser = requests.Session()

    def note(label, response, *texts):
        seen.append((label, response.status_code, response.headers.get("Content-Type"),
                     response.headers.get("Location"), sorted(response.cookies.keys()),
                     [text in response.text for text in texts]))
        return response

    note("form", browser.get(f"{base}/form/"), 'name="csrfmiddlewaretoken"', 'name="name"')
    token = browser.cookies["csrftoken"]
    note("invalid", browser.post(f"{base}/form/", data={
        "name": "far too long", "csrfmiddlewaretoken": token}), "errorlist")
    valid = note("valid", browser.post(f"{base}/form/", allow_redirects=False, data={
        "name": "Ada", "csrfmiddlewaretoken": token}))
    note("redirected", browser.get(base + valid.headers["Location"]), "Thanks, Ada")
    note("no csrf", requests.post(f"{base}/form/", data={"name": "Ada"}),
         "CSRF verification failed")
    for visit, flavour in ((1, "-"), (2, "ginger")):
        note("cookie", browser.get(f"{base}/cookie/"), f"flavour={flavour}")
        note("session", browser.get(f"{base}/session/"), f"visits={visit}")
    payload = random.Random(5).randbytes(3 * 1024 * 1024 + 17)
    upload = browser.post(f"{base}/upload/", data={"note": "café"},
                          files={"file": ("data.bin", payload)}, headers={
                              "X-CSRFToken": token, "Referer": f"{base}/"})
    note("upload", upload)
    seen.append(("upload result", upload.json() if upload.ok else upload.text[:200]))
    note("admin", browser.get(f"{base}/admin/", allow_redirects=False))
    login = browser.get(f"{base}/admin/login/")
    note("admin login page", login, "Django administration")
    note("admin logged in", browser.post(f"{base}/admin/login/?next=/admin/", data={
        "username": "admin", "password": "admin-pw", "next": "/admin/",
        "csrfmiddlewaretoken": browser.cookies["csrftoken"]}), "Site administration")
    note("404", browser.get(f"{base}/nowhere/"), "Page not found",
         "Using the URLconf defined in")
    note("500", browser.get(f"{base}/boom/"), "ZeroDivisionError", "Traceback")
    head = browser.head(f"{base}/session/")
    note("head", head)
    seen.append(("head body", head.content))
    return seen


class PlainProjectTests(unittest.TestCase):
    """A Django project with no ROUTING behaves under runserver exactly as
    under Django's own."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.addClassCleanup(cls.tmp.cleanup)
        cls.env = {"PLAIN_DB": os.path.join(cls.tmp.name, "db.sqlite3")}
        manage(PLAIN, "migrate", "--noinput", env=cls.env)
        manage(PLAIN, "createsuperuser", "--noinput", "--username", "admin",
               "--email", "admin@example.com",
               env={**cls.env, "DJANGO_SUPERUSER_PASSWORD": "admin-pw"})

    def serve(self, **env):
        server = ServerProcess(PLAIN, "--noreload", env={**self.env, **env})
        self.addCleanup(server.kill)
        return server

    def test_same_as_djangos_runserver(self):
        ours = self.serve()
        self.assertIn("Channel backend 'default'", ours.output)
        django = self.serve(PLAIN_WITHOUT_CHANNELS="1")
        self.assertNotIn("Channel backend", django.output)
        seen = exercise(ours.url)
        self.assertEqual(seen, exercise(django.url))
        # And what was seen is what a working site shows.
        statuses = {label: status for label, status, *rest in seen if isinstance(status, int)}
        self.assertEqual(statuses["valid"], 302)
        self.assertEqual(statuses["no csrf"], 403)
        self.assertEqual(statuses["404"], 404)
        self.assertEqual(statuses["500"], 500)
        result = next(item[1] for item in seen if item[0] == "upload result")
        self.assertEqual((result["size"], result["field"]), (3 * 1024 * 1024 + 17, "café"))
        for label, *_, found in filter(lambda item: len(item) == 6, seen):
            self.assertTrue(all(found), f"{label}: expected text missing")


class RunserverCheckTests(SimpleTestCase):
    """channels.W001: another app's runserver would win."""

    def ids(self):
        return [error.id for error in check_runserver_command()]

    @override_settings(INSTALLED_APPS=["django.contrib.staticfiles", "channels"])
    def test_staticfiles_first_warns(self):
        [warning] = check_runserver_command()
        self.assertEqual(warning.id, "channels.W001")
        self.assertEqual(warning.msg, (
            "manage.py runserver runs the command from 'django.contrib.staticfiles', which "
            "comes before 'channels' in INSTALLED_APPS, so it serves no WebSockets and runs "
            "no consumers."))
        self.assertEqual(warning.hint,
                         "Move 'channels' above 'django.contrib.staticfiles' in INSTALLED_APPS.")
        self.assertIn(check_runserver_command, checks.registry.registry.get_checks())

    @override_settings(INSTALLED_APPS=["channels", "django.contrib.staticfiles"])
    def test_channels_first_is_fine(self):
        self.assertEqual(self.ids(), [])


class ProductionWarningTests(SimpleTestCase):
    """The banner's warning names runwsserver and runworker, not Django's
    "WSGI or ASGI server", and Django's switch still hides it."""

    def banner(self):
        out = io.StringIO()
        command = RunserverCommand(stdout=out, no_color=True)
        command.addr, command._raw_ipv6, command.protocol = "127.0.0.1", False, "http"
        command.on_bind(8000)
        return out.getvalue()

    def test_names_this_projects_servers(self):
        with mock.patch.dict(os.environ):
            os.environ.pop(HIDE_WARNING, None)
            output = self.banner()
            self.assertNotIn(HIDE_WARNING, os.environ)
        self.assertIn("Starting development server at http://127.0.0.1:8000/", output)
        self.assertIn(PRODUCTION_WARNING, output)
        self.assertNotIn("WSGI or ASGI", output)

    def test_points_at_the_built_docs_and_says_how_to_build_them(self):
        page = re.search(r"docs/_build/html/([\w-]+)\.html", PRODUCTION_WARNING).group(1)
        self.assertTrue(os.path.isfile(os.path.join(ROOT, "docs", f"{page}.rst")), page)
        self.assertIn('"make docs"', PRODUCTION_WARNING)
        with open(os.path.join(ROOT, "Makefile")) as makefile:
            self.assertRegex(makefile.read(), r"(?m)^docs:.*\n\t.* sphinx .* docs/_build/html$")

    def test_hidden_by_djangos_switch(self):
        with mock.patch.dict(os.environ, {HIDE_WARNING: "true"}):
            output = self.banner()
            self.assertEqual(os.environ[HIDE_WARNING], "true")
        self.assertIn("Starting development server at", output)
        self.assertNotIn("WARNING", output)
