"""Presence with real processes on three throwaway Redis shards: the
members held by a ``runwsserver`` killed with SIGKILL leave within a
heartbeat TTL, each with exactly one leave event, although two
``runworker`` processes sweep; the members of the server that lives on
stay (tests/presence_consumers.py)."""

import json
import signal
import sys
import time

import websocket
from django.test import SimpleTestCase

from channels.presence import Presence
from tests.presence_consumers import ROOM
from tests.support.processes import Process, django_env, start_worker
from tests.support.redis_servers import backend_config, redis_backend, shared_servers

ROUTING = "tests.presence_consumers.routing"
INTERVAL, TTL = 0.5, 2.0
# What a loaded machine may add to the TTL: the sweeper's wake-up and the
# leave's way to the watcher.
SLACK = 10.0


class Watcher:
    """A socket in the room, applying what it is sent: ``members`` (key to
    connections) and every leave event it got, by key."""

    def __init__(self, url: str):
        self.socket = websocket.create_connection(url, timeout=30)
        self.members: dict[str, int] = {}
        self.leaves: list[str] = []

    def read(self, timeout: float) -> bool:
        """Apply the next message; False if none came within ``timeout``."""
        self.socket.settimeout(timeout)
        try:
            frame = json.loads(self.socket.recv())
        except websocket.WebSocketTimeoutException:
            return False
        payload = frame["payload"]
        if payload["event"] == "state":
            self.members = {key: m["connections"] for key, m in payload["members"].items()}
        else:
            for key, member in {**payload["joins"], **payload["updates"]}.items():
                self.members[key] = member["connections"]
            for key in payload["leaves"]:
                self.members.pop(key, None)
                self.leaves.append(key)
        return True

    def wait_for(self, members: dict[str, int], timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.members != members:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.read(remaining):
                raise AssertionError(f"members {self.members}, not {members}")


class KilledServerTests(SimpleTestCase):
    def setUp(self):
        servers = shared_servers(3)
        options = {"routing": ROUTING, "heartbeat_interval": INTERVAL, "heartbeat_ttl": TTL}
        config = backend_config(servers, **options)
        self.backend = redis_backend(servers, prefix=config["PREFIX"], **options)
        self.addCleanup(self.backend.close)
        self.addCleanup(self.backend.flush)
        self.env = django_env("tests.liveness_settings",
                              CHANNELS_TEST_BACKEND=json.dumps(config))

    def start_server(self) -> tuple[Process, int]:
        server = Process([sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0"],
                         self.env)
        self.addCleanup(server.stop)
        return server, int(server.wait_for_line(r"http://127\.0\.0\.1:(\d+)/").group(1))

    def connect(self, port: int, user: str) -> websocket.WebSocket:
        socket = websocket.create_connection(f"ws://127.0.0.1:{port}/room/?user={user}",
                                             timeout=30)
        self.addCleanup(socket.close)
        return socket

    def test_members_of_a_killed_server_leave_within_a_ttl_once(self):
        for _ in range(2):
            self.addCleanup(start_worker(self.env).stop)
        doomed, doomed_port = self.start_server()
        _, port = self.start_server()
        watcher = Watcher(f"ws://127.0.0.1:{port}/room/?user=watcher")
        self.addCleanup(watcher.socket.close)
        watcher.wait_for({"watcher": 1})
        for user in ("alice", "alice", "bob"):
            self.connect(doomed_port, user)
        watcher.wait_for({"watcher": 1, "alice": 2, "bob": 1})

        doomed.popen.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        watcher.wait_for({"watcher": 1})
        self.assertLess(time.monotonic() - killed, TTL + SLACK)
        # Several sweeps later, still one leave each.
        while watcher.read(4 * INTERVAL):
            pass
        self.assertEqual(sorted(watcher.leaves), ["alice", "bob"])
        self.assertEqual(list(Presence(ROOM, channel_backend=self.backend).list()),
                         ["watcher"])
