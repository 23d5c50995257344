"""Presence (channels.presence, docs/presence.rst) on the in-memory backend
and on three throwaway Redis shards: members per key, the messages the
members get, atomic joins and leaves under a race, sweeps of dead
processes and expired members (each leave told once, however many sweep),
and a shard restart."""

import json
import secrets
import threading
import time

from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.heartbeats import INTERFACE
from channels.presence import Member, Presence, sweep
from channels.worker.heartbeat import WorkerHeartbeat
from tests.support.redis_servers import RedisServer, redis_backend
from tests.support.redis_tests import RedisTestCase
from tests.support.worker_threads import worker_threads

FAST = {"heartbeat_interval": 0.2, "heartbeat_ttl": 0.6}


def reply_channel(process=None):
    """A reply channel as an interface process ``process`` names them."""
    return f"!websocket.send.{process or secrets.token_hex(8)}-{secrets.token_hex(16)}"


def wait_for(condition, timeout=20.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


class PresenceContract:
    """The tests, for any backend: ``make_backend(**options)``."""

    def setUp(self):
        super().setUp()
        self.backend = self.make_backend()
        self.lobby = Presence("room-lobby", channel_backend=self.backend)

    def received(self, channel, backend=None):
        """The presence payloads sent to ``channel`` so far (read, as an
        interface server does, through its process wildcard)."""
        payloads = []
        while True:
            name, content = (backend or self.backend).receive_many([channel[:-32]])
            if name is None:
                return payloads
            self.assertEqual(name, channel)
            frame = json.loads(content["text"])
            self.assertEqual(frame["stream"], "presence")
            payloads.append(frame["payload"])

    def test_add_list_remove_per_key(self):
        alice1, alice2, bob = reply_channel(), reply_channel(), reply_channel()
        self.assertTrue(self.lobby.add(alice1, "alice", {"name": "Alice"}))
        self.assertTrue(self.lobby.add(alice2, "alice", {"name": "Alice"}))
        self.assertTrue(self.lobby.add(bob, "bob", {"name": "Bob"}))
        self.assertEqual(self.lobby.list(), {"alice": Member({"name": "Alice"}, 2),
                                             "bob": Member({"name": "Bob"}, 1)})
        self.assertCountEqual(self.backend.group_channels("room-lobby"), [alice1, alice2, bob])
        self.assertFalse(self.lobby.add(alice1, "alice", {"name": "Alice"}))  # a renewal
        self.assertTrue(self.lobby.remove(alice1))
        self.assertFalse(self.lobby.remove(alice1))
        self.assertEqual(self.lobby.list()["alice"], Member({"name": "Alice"}, 1))
        self.lobby.remove(alice2)
        self.lobby.remove(bob)
        self.assertEqual(self.lobby.list(), {})
        self.assertEqual(self.backend.group_channels("room-lobby"), [])
        with self.assertRaises(ValueError):
            self.lobby.add(alice1, "")

    def test_members_get_the_state_then_the_diffs(self):
        alice1, bob, alice2 = reply_channel(), reply_channel(), reply_channel()
        self.lobby.add(alice1, "alice", {"name": "Alice"})
        own, state = self.received(alice1)  # its own join, then the state
        self.assertEqual((own["event"], state["event"]), ("diff", "state"))
        self.assertEqual(state["members"], {"alice": {"meta": {"name": "Alice"},
                                                      "connections": 1}})
        self.lobby.add(bob, "bob", {"name": "Bob"})
        [join] = self.received(alice1)
        self.assertEqual(join["joins"], {"bob": {"meta": {"name": "Bob"}, "connections": 1}})
        self.assertEqual((join["updates"], join["leaves"]), ({}, {}))
        self.assertGreater(join["version"], state["version"])
        diff, state = self.received(bob)  # its own join, and the state after it
        self.assertEqual(state["version"], diff["version"])
        self.assertEqual(set(state["members"]), {"alice", "bob"})

        self.lobby.add(alice2, "alice", {"name": "Alice"})  # a second tab: one key
        [update] = self.received(bob)
        self.assertEqual((update["joins"], update["leaves"]), ({}, {}))
        self.assertEqual(update["updates"]["alice"]["connections"], 2)
        self.lobby.add(alice2, "alice", {"name": "Alice"})  # renewed: nothing sent
        self.assertEqual(self.received(bob), [])
        self.lobby.remove(alice1)
        [update] = self.received(bob)
        self.assertEqual(update["updates"]["alice"]["connections"], 1)
        self.lobby.remove(alice2)
        [leave] = self.received(bob)
        self.assertEqual(leave["leaves"], {"alice": {"meta": {"name": "Alice"}}})
        self.assertEqual((leave["joins"], leave["updates"]), ({}, {}))

    def test_a_changed_meta_is_an_update(self):
        alice, bob = reply_channel(), reply_channel()
        self.lobby.add(alice, "alice", {"name": "Alice"})
        self.lobby.add(bob, "bob", {"name": "Bob"})
        self.received(bob)
        self.assertFalse(self.lobby.add(alice, "alice", {"name": "Alice", "away": True}))
        [update] = self.received(bob)
        self.assertEqual(update["updates"], {"alice": {"meta": {"name": "Alice", "away": True},
                                                       "connections": 1}})

    def test_a_channel_moved_to_another_key_leaves_the_first(self):
        channel = reply_channel()
        self.lobby.add(channel, "alice")
        joined = self.backend.presence_join("room-lobby", channel, "bob", {}, 60)
        self.assertEqual((set(joined.change.joins), set(joined.change.leaves)),
                         ({"bob"}, {"alice"}))
        self.assertEqual(set(self.lobby.list()), {"bob"})

    def test_joins_and_leaves_race_atomically(self):
        """Threads open and close tabs of one user at once: the changes, in
        version order, take the user online and offline in turn, with the
        right count each time, and end with nobody."""
        changes, lock = [], threading.Lock()

        def tab():
            channel = reply_channel()
            for _ in range(15):
                joined = self.backend.presence_join("room-lobby", channel, "alice", {}, 60)
                left = self.backend.presence_leave("room-lobby", channel)
                with lock:
                    changes.extend((joined.change, left))

        threads = [threading.Thread(target=tab) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        self.assertEqual(len(changes), 6 * 15 * 2)
        changes.sort(key=lambda change: change.version)
        self.assertEqual(len({change.version for change in changes}), len(changes))
        connections = 0
        for change in changes:
            if "alice" in change.leaves:
                self.assertEqual(connections, 1)
                connections = 0
            else:
                member = (change.joins or change.updates)["alice"]
                self.assertEqual("alice" in change.joins, connections == 0)
                self.assertIn(member.connections, (connections - 1, connections + 1))
                connections = member.connections
        self.assertEqual(connections, 0)
        self.assertEqual(self.lobby.list(), {})

    def test_members_of_a_dead_process_leave_once(self):
        """The sweep removes the members of a process whose heartbeat
        expired, answering each leave to one sweeper of several."""
        backend = self.make_backend(**FAST)
        lobby = Presence("room-lobby", channel_backend=backend)
        dying, living = secrets.token_hex(8), secrets.token_hex(8)
        for process in (dying, living):
            backend.set_heartbeat(INTERFACE, process, {"id": process})
        watcher = reply_channel(living)
        lobby.add(watcher, "watcher")
        lobby.add(reply_channel(dying), "alice", {"name": "Alice"})
        lobby.add(reply_channel(dying), "alice", {"name": "Alice"})
        lobby.add(reply_channel(dying), "bob")
        self.received(watcher, backend)
        backend.clear_heartbeat(INTERFACE, dying)

        others = [self.make_backend(**FAST, prefix=getattr(backend, "prefix", None))
                  for _ in range(2)] if hasattr(backend, "prefix") else [backend, backend]
        leaves, stop = [], threading.Event()

        def sweeper(on):
            while not stop.is_set():
                backend.set_heartbeat(INTERFACE, living, {"id": living})
                for _, change in on.presence_sweep(INTERFACE)[0]:
                    leaves.append(change)
                time.sleep(0.01)

        threads = [threading.Thread(target=sweeper, args=(on,)) for on in others]
        for thread in threads:
            thread.start()
        self.addCleanup(stop.set)
        self.assertTrue(wait_for(lambda: leaves))
        stop.set()
        for thread in threads:
            thread.join(10)
        self.assertEqual(len(leaves), 1, leaves)
        self.assertEqual(leaves[0].leaves, {"alice": {"name": "Alice"}, "bob": {}})
        self.assertEqual(set(lobby.list()), {"watcher"})
        self.assertEqual(backend.group_channels("room-lobby"), [watcher])  # left the group too

    def test_sweep_broadcasts_and_says_when_next(self):
        backend = self.make_backend(**FAST)
        lobby = Presence("room-lobby", channel_backend=backend)
        watcher = reply_channel()  # no heartbeat: of no process it names
        lobby.add(watcher, "watcher", expiry=60)
        lobby.add(reply_channel(), "brief", expiry=0.3)
        self.received(watcher, backend)
        self.assertLessEqual(sweep(backend), FAST["heartbeat_interval"] + 0.001)
        self.assertEqual(set(lobby.list()), {"watcher", "brief"})
        wait_for(lambda: sweep(backend) is not None and "brief" not in lobby.list())
        self.assertEqual(set(lobby.list()), {"watcher"})
        [leave] = self.received(watcher, backend)
        self.assertEqual(leave["leaves"], {"brief": {"meta": {}}})


class MemoryPresenceTests(PresenceContract, SimpleTestCase):
    def make_backend(self, **options):
        return InMemoryChannelBackend(**options)

    def test_running_workers_sweep(self):
        """As in runserver: worker threads sweep from their heartbeat, and
        a sweep that fails is logged once, and tried again."""
        backend = self.make_backend(**FAST)
        lobby = Presence("room-lobby", channel_backend=backend)
        living = secrets.token_hex(8)
        backend.set_heartbeat(INTERFACE, living, {"id": living}, ttl=600)
        watcher = reply_channel(living)
        lobby.add(watcher, "watcher")
        lobby.add(reply_channel(), "ghost")  # of a process that never beat
        self.received(watcher, backend)
        sweeps, failing = [], threading.Event()

        def presence_sweep(kind, sweep=backend.presence_sweep):
            sweeps.append(kind)
            if failing.is_set():
                raise RuntimeError("store broken")
            return sweep(kind)

        backend.presence_sweep = presence_sweep
        failing.set()
        with self.assertLogs("channels.worker", "ERROR") as logs, \
                worker_threads(backend, ["nothing.here"], 2):
            wait_for(lambda: len(sweeps) >= 3)
            failing.clear()
            self.assertTrue(wait_for(lambda: "ghost" not in lobby.list()))
        self.assertEqual(len(logs.records), 1)
        self.assertEqual(sweeps[0], INTERFACE)
        self.assertEqual(lobby.list(), {"watcher": Member({}, 1)})
        [leave] = self.received(watcher, backend)
        self.assertEqual(leave["leaves"], {"ghost": {"meta": {}}})


class NoPresenceBackendTests(SimpleTestCase):
    def test_workers_stop_sweeping_a_backend_without_presences(self):
        class Backend(InMemoryChannelBackend):
            def _presence_sweep(self, kind):
                raise NotImplementedError

        heartbeat = WorkerHeartbeat(Backend())
        with self.assertNoLogs("channels.worker"):
            heartbeat.sweep()
        self.assertEqual(heartbeat._next_sweep, float("inf"))


class RedisPresenceTests(PresenceContract, RedisTestCase):
    """On three shards; presences of several names land on each."""

    def test_presences_live_on_their_groups_shards(self):
        names = {self.backend.placement.group_shard(f"room-{n}"): f"room-{n}"
                 for n in range(50)}
        self.assertEqual(len(names), 3)
        for index, name in names.items():
            Presence(name, channel_backend=self.backend).add(reply_channel(), "alice")
            hashes = [server.client().exists(f"{self.backend.prefix}P:{name}")
                      for server in self.servers]
            self.assertEqual(hashes, [int(i == index) for i in range(3)])


class RedisShardRestartTests(SimpleTestCase):
    """A shard that restarts loses the presences on it, and only those;
    a member added again (the next keepalive) is new, and gets the state."""

    def test_restart(self):
        servers = [RedisServer().start() for _ in range(3)]
        for server in servers:
            self.addCleanup(server.cleanup)
        backend = redis_backend(servers, **FAST)
        self.addCleanup(backend.close)
        rooms = {backend.placement.group_shard(f"room-{n}"): f"room-{n}" for n in range(50)}
        process = secrets.token_hex(8)
        backend.set_heartbeat(INTERFACE, process, {"id": process})
        members = {}
        for index, name in rooms.items():
            members[index] = reply_channel(process)
            Presence(name, channel_backend=backend).add(members[index], "alice")
            backend.receive_many([members[index][:-32]])
        before = backend.presence_members(rooms[1])[0]
        servers[1].stop()
        servers[1].start()
        self.assertEqual(Presence(rooms[1], channel_backend=backend).list(), {})
        for index in (0, 2):
            self.assertEqual(set(Presence(rooms[index], channel_backend=backend).list()),
                             {"alice"})
        # The restarted shard has not held heartbeats for a TTL: it does not
        # take the members added again for dead, whatever it misses.
        self.assertTrue(Presence(rooms[1], channel_backend=backend).add(members[1], "alice"))
        self.assertEqual(backend.presence_sweep(INTERFACE)[0], [])
        self.assertEqual(set(Presence(rooms[1], channel_backend=backend).list()), {"alice"})
        payloads = []
        while (message := backend.receive_many([members[1][:-32]]))[0] is not None:
            payloads.append(json.loads(message[1]["text"])["payload"])
        state = payloads[-1]
        self.assertEqual((state["event"], list(state["members"])), ("state", ["alice"]))
        # Clients take it over the state they hold from before.
        self.assertGreater(state["version"], before)
