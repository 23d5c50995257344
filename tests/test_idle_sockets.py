"""Idle WebSockets cost nothing but memory: a real ``runwsserver`` and
``runworker`` on three throwaway Redis shards, sockets that joined a group
on connect (tests/idle_consumers.py) and then stay silent.

What is asserted: over an idle period longer than EXPIRY and GROUP_EXPIRY,
no message crosses the layer and no member is renewed (Redis's own command
counts), the sockets are still members and a group send reaches each; the
sockets that close leave no member behind although no consumer discards
them; and the members of a server killed with SIGKILL are gone from Redis
within a heartbeat TTL."""

import json
import signal
import sys
import time

import websocket
from django.test import SimpleTestCase

from tests.support.processes import Process, django_env
from tests.support.redis_servers import backend_config, redis_backend, shared_servers
from tests.support.redis_tests import all_commands, bound_members, keys_of
from tests.support.worker_threads import wait_for

ROUTING = "tests.idle_consumers.routing"
SOCKETS = 200
# A heartbeat TTL of six intervals: a loaded machine may delay a write or two.
OPTIONS = {"expiry": 2, "group_expiry": 2, "heartbeat_interval": 1, "heartbeat_ttl": 6}


class IdleSocketTests(SimpleTestCase):
    def setUp(self):
        self.servers = shared_servers(3)
        config = backend_config(self.servers, routing=ROUTING, **OPTIONS)
        self.backend = redis_backend(self.servers, routing=ROUTING, prefix=config["PREFIX"],
                                     **OPTIONS)
        self.addCleanup(self.backend.close)
        self.addCleanup(self.backend.flush)
        self.env = django_env("tests.interface_redis_settings",
                              CHANNELS_TEST_BACKEND=json.dumps(config))

    def start(self, *command):
        process = Process([sys.executable, "-m", "django", *command], self.env)
        self.addCleanup(process.stop)
        return process

    def members(self):
        return bound_members(self.backend, self.servers)

    def recorded(self):
        """The server's heartbeat record is on every shard. A socket whose
        connect a worker runs before it is on the group's shard becomes a
        plain member that expires, not one bound to the server
        (docs/concepts.rst, "How long a member stays"); a server writes it
        as it starts listening, and a test that connects at once races it."""
        return all(keys_of(self.backend, server, "h:interface:") for server in self.servers)

    def test_idle_sockets_stay_members_without_traffic_and_leave_with_socket_or_server(self):
        worker = self.start("runworker")
        worker.wait_for_line("listening on")
        server = self.start("runwsserver", "127.0.0.1:0")
        port = int(server.wait_for_line(r"http://127\.0\.0\.1:(\d+)/").group(1))
        wait_for(self.recorded, timeout=30)
        sockets = [websocket.create_connection(f"ws://127.0.0.1:{port}/room/", timeout=20)
                   for _ in range(SOCKETS)]
        self.addCleanup(lambda: [ws.close() for ws in sockets])
        wait_for(lambda: self.members() == SOCKETS, timeout=30)

        before = all_commands(self.servers)
        # Idle for twice EXPIRY and GROUP_EXPIRY: the period is the subject.
        time.sleep(2 * OPTIONS["expiry"])
        idle = all_commands(self.servers) - before
        # No message through the layer (a send pushes), no member re-added.
        self.assertEqual(idle["rpush"] + idle["lpush"], 0, idle)
        self.assertEqual(idle["zadd"], 0, idle)
        # Heartbeats only: a few script calls a second for the two
        # processes, where keepalives would have been a send and an add
        # per socket a second.
        self.assertLess(idle["evalsha"], SOCKETS / 2, idle)

        self.assertEqual(len(self.backend.group_channels("room")), SOCKETS)
        self.backend.send_group("room", {"text": "to all"})
        for ws in sockets:
            self.assertEqual(ws.recv(), "to all")
        for n, ws in enumerate(sockets):
            ws.send(str(n))
        self.assertEqual([ws.recv() for ws in sockets], [str(n) for n in range(SOCKETS)])

        # Closed sockets leave, though no consumer discards them.
        for ws in sockets[:50]:
            ws.close()
        wait_for(lambda: self.members() == SOCKETS - 50, timeout=30)

        # A server killed with SIGKILL: its members go with its heartbeat.
        server.popen.send_signal(signal.SIGKILL)
        server.popen.wait()
        killed = time.monotonic()
        wait_for(lambda: self.members() == 0, timeout=30)
        self.assertLess(time.monotonic() - killed, OPTIONS["heartbeat_ttl"] + 5)
        self.assertEqual(self.backend.group_channels("room"), [])
