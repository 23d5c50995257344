"""``make demo-cluster`` (testproject/demo_cluster.py and its Procfile):
three Redis shards, runwsserver and two runworkers come up under honcho,
serve the chat and a WebSocket, and Ctrl-C stops every one of them."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import unittest

import requests
import websocket

from tests.support.server_process import ROOT, free_port
from tests.support.worker_threads import wait_for

SCRIPT = os.path.join(ROOT, "testproject", "demo_cluster.py")


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


class DemoClusterTests(unittest.TestCase):
    def test_comes_up_serves_the_chat_and_stops_on_ctrl_c(self):
        tmp = tempfile.TemporaryDirectory()
        self.addCleanup(tmp.cleanup)
        port = free_port()
        # TMPDIR: where it makes the shards' directory, to see it deleted.
        env = dict(os.environ, DEMO_WEB_PORT=str(port), TMPDIR=tmp.name,
                   DJANGO_DB=os.path.join(tmp.name, "db.sqlite3"))
        env.pop("DJANGO_SETTINGS_MODULE", None)
        # Its own process group, as in a terminal, where Ctrl-C reaches the
        # whole foreground group.
        process = subprocess.Popen([sys.executable, SCRIPT], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True,
                                   process_group=0)
        self.addCleanup(lambda: process.poll() is None and os.killpg(process.pid,
                                                                     signal.SIGKILL))
        lines: list[str] = []
        reader = threading.Thread(target=lambda: lines.extend(process.stdout), daemon=True)
        reader.start()
        output = lambda: "".join(lines)  # noqa: E731

        try:
            wait_for(lambda: output().count("Running worker on backend 'default' "
                                            "(RedisChannelBackend)") == 2
                     and "Static files at /static/" in output(), timeout=60)
        except AssertionError:
            raise AssertionError("the cluster did not come up:\n" + output()) from None
        shards = [int(p) for p in re.findall(r"redis://127\.0\.0\.1:(\d+)/0",
                                             output().split("Redis shards", 1)[1])[:3]]
        self.assertEqual(len(set(shards)), 3, output())
        base = f"http://127.0.0.1:{port}"
        login = requests.get(f"{base}/login/", timeout=10)
        self.assertEqual(login.status_code, 200)
        self.assertIn('name="username"', login.text)
        self.assertEqual(requests.get(f"{base}/static/chat/chat.js", timeout=10).status_code,
                         200)
        ws = websocket.create_connection(f"ws://127.0.0.1:{port}/ws/echo/", origin=base,
                                         timeout=10)
        ws.send("through three shards")
        self.assertEqual(ws.recv(), "through three shards")
        ws.close()
        wait_for(lambda: "shard 1 (:" in output(), timeout=30)
        self.check_status(base, env, shards)

        os.killpg(process.pid, signal.SIGINT)
        # 130: stopped by Ctrl-C, as honcho (and any shell) reports it.
        self.assertEqual(process.wait(30), 130, output())
        reader.join(10)
        for name in ("web", "worker1", "worker2", "status"):
            self.assertIn(f"{name}.1 stopped (rc=0)", output())
        for name in ("redis1", "redis2", "redis3"):
            self.assertIn(f"{name}.1 stopped (rc=", output())
        for each in (*shards, port):
            self.assertTrue(refuses(each), f"port {each} still open")
        self.assertEqual([name for name in os.listdir(tmp.name)
                          if name.startswith("channels-demo-cluster-")], [])

    def check_status(self, base, env, shards):
        """channels_status, as the banner says to run it, and the status page
        for the staff user: three shards, two workers, one server."""
        hosts = " ".join(f"redis://127.0.0.1:{shard}/0" for shard in shards)
        result = subprocess.run(
            [sys.executable, os.path.join(ROOT, "testproject", "manage.py"), "channels_status",
             "--json"], env={**env, "CHANNELS_REDIS_HOSTS": hosts}, capture_output=True,
            text=True, timeout=60)
        self.assertEqual(result.returncode, 0, result.stderr)
        report = json.loads(result.stdout)
        self.assertEqual([shard["up"] for shard in report["shards"]], [True, True, True])
        self.assertEqual(len(report["workers"]), 2)
        self.assertEqual(len(report["interface_servers"]), 1)

        session = requests.Session()
        session.get(f"{base}/login/", timeout=10)
        session.post(f"{base}/login/", timeout=10, data={
            "username": "admin", "password": "demo-password",
            "csrfmiddlewaretoken": session.cookies["csrftoken"]})
        page = session.get(f"{base}/channels/status/data.json", timeout=30)
        self.assertEqual(page.status_code, 200, page.text[:500])
        self.assertEqual(len(page.json()["workers"]), 2)
        shell = session.get(f"{base}/channels/status/", timeout=30)
        self.assertEqual(shell.status_code, 200)
        self.assertIn("/static/channels/status.js", shell.text)
        script = session.get(f"{base}/static/channels/status.js", timeout=10)
        self.assertEqual(script.status_code, 200)
        self.assertIn("function draw(", script.text)
