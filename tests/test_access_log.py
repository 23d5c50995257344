"""The interface server's access log: on by default in runwsserver, one
line per answer, including the errors the server gives itself."""

import io
import json
import os
import socket
import subprocess
import sys
import threading

import requests
import websocket
from django.test import SimpleTestCase

from tests.support.interface_server import raw_request, serving, status_of
from tests.support.redis_servers import shared_servers
from tests.support.worker_threads import wait_for, worker_threads
from tests.test_interface_redis import REPO, make_backend


class RunWsServerLogTests(SimpleTestCase):
    def start(self, *options):
        """runwsserver on a free port with ``options``, its output read
        into a list; returns (port, lines, backend)."""
        config, backend = make_backend(self, shared_servers(1))
        env = dict(os.environ, CHANNELS_TEST_BACKEND=json.dumps(config), PYTHONPATH=REPO,
                   PYTHONUNBUFFERED="1", DJANGO_SETTINGS_MODULE="tests.interface_redis_settings")
        process = subprocess.Popen(
            [sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0", *options],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        banner = process.stdout.readline()
        port = int(banner.split("http://127.0.0.1:")[1].split("/")[0])
        lines = [banner]
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        workers = worker_threads(backend, backend.registry.all_channel_names(), 1)
        workers.__enter__()
        self.addCleanup(workers.__exit__, None, None, None)
        self.process, self.reader = process, reader
        return port, lines

    def stop(self):
        """Stop the server and wait for the last of its output."""
        self.process.terminate()
        self.process.wait(10)
        self.reader.join(10)

    def test_on_by_default_with_every_answer(self):
        port, lines = self.start()
        wait_for(lambda: len(lines) >= 2)
        self.assertEqual(lines[1], "Static files: none served (DEBUG is off and STATIC_ROOT "
                                   "is not set).\n")
        self.assertEqual(requests.get(f"http://127.0.0.1:{port}/x/", timeout=5).status_code, 200)
        self.assertEqual(status_of(raw_request(port, b"NOT HTTP\r\n\r\n")), 400)
        self.assertEqual(requests.get(f"http://127.0.0.1:{port}/x/", timeout=5,
                                      headers={"Host": "evil.example"}).status_code, 400)
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/echo/", timeout=5)
        ws.close()
        expected = ['"GET /x/ HTTP/1.1" 200 ', '"-" 400 ', '"GET /x/ HTTP/1.1" 400 ',
                    '"GET /echo/ HTTP/1.1" 101 -', '"WSDISCONNECT /echo/ HTTP/1.1" 1000 -']
        wait_for(lambda: len(lines) >= 2 + len(expected))
        for line, text in zip(lines[2:], expected, strict=True):
            self.assertIn(text, line)
            self.assertTrue(line.startswith("127.0.0.1 - - ["), line)

    def test_no_access_log_and_no_static(self):
        port, lines = self.start("--no-access-log", "--no-static")
        self.assertEqual(requests.get(f"http://127.0.0.1:{port}/x/", timeout=5).status_code, 200)
        self.stop()
        self.assertEqual(lines[1:], ["Static files: none served (--no-static).\n",
                                     "Interface server stopped.\n"])


class ServerErrorLogTests(SimpleTestCase):
    """Answers the server gives before or without a worker."""

    def test_incomplete_head_408_and_connection_cap_503(self):
        log = io.StringIO()
        with serving(access_log=log, header_timeout=0.2, max_connections=1) as (handle, _):
            with socket.create_connection(("127.0.0.1", handle.port), timeout=5) as first:
                first.sendall(b"GET /x/ HTTP/1.1\r\nHost: loc")
                wait_for(lambda: handle.server.connection_count() == 1)
                refused = raw_request(handle.port, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                self.assertEqual(status_of(refused), 503)
                self.assertEqual(status_of(first.recv(65536)), 408)
        lines = log.getvalue().splitlines()
        self.assertEqual(len(lines), 2, lines)
        self.assertIn('"-" 503 -', lines[0])
        self.assertIn('"-" 408 ', lines[1])
