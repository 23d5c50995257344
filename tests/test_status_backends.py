"""``BaseChannelBackend.status()``, the introspection part of the backend
contract (channels/backends/status.py): the in-memory backend, the Redis
backend on three real shards (one stopped), and what a worker's heartbeat
says of its consumers' time (channels/worker/durations.py)."""

import time
from unittest import mock

from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.backends.redis import status as redis_status
from channels.exceptions import InvalidChannelName
from channels.heartbeats import WORKER
from channels.names import new_name
from channels.worker.durations import Durations
from tests.support.redis_servers import RedisServer, redis_backend, shared_servers
from tests.support.redis_tests import RedisTestCase
from tests.support.worker_threads import wait_for, worker_threads


class StatusContract:
    """What every backend's status() says; ``make(**options)`` gives a
    fresh backend."""

    def test_depth_and_capacity_of_each_normal_channel(self):
        backend = self.make(channel_capacity={"chat.*": 7})
        for n in range(5):
            backend.send("chat.log", {"n": n})
        backend.send("jobs", {"n": 0})
        status = backend.status(["websocket.connect"])
        channels = {channel.name: channel for channel in status.channels}
        self.assertEqual(sorted(channels), ["chat.log", "jobs", "websocket.connect"])
        self.assertEqual(channels["chat.log"].total, 5)
        self.assertEqual(channels["chat.log"].capacity, 7)
        self.assertEqual(channels["jobs"].total, 1)
        self.assertEqual(channels["jobs"].capacity, 100)
        self.assertEqual(channels["websocket.connect"].depth, [0] * len(status.shards))
        self.assertTrue(all(shard.up for shard in status.shards))

    def test_taken_messages_no_longer_count(self):
        backend = self.make()
        backend.send("jobs", {"n": 0})
        backend.send("jobs", {"n": 1})
        self.assertIsNotNone(backend.receive_many(["jobs"])[0])
        [channel] = backend.status().channels
        self.assertEqual(channel.total, 1)

    def test_response_channels_are_counted_not_listed(self):
        backend = self.make()
        backend.send(new_name("!http.response"), {"status": 200})
        backend.send(new_name("http.request.body"), {"content": b""})
        status = backend.status()
        self.assertEqual(status.channels, [])
        self.assertEqual(sum(shard.replies_waiting for shard in status.shards), 2)

    def test_groups_are_counted(self):
        backend = self.make()
        backend.group_add("room-1", new_name("!websocket.send"))
        backend.group_add("room-2", new_name("!websocket.send"))
        backend.group_add("room-2", new_name("!websocket.send"))
        self.assertEqual(backend.status().groups, 2)

    def test_as_dict_is_what_json_shows(self):
        backend = self.make()
        backend.send("jobs", {"n": 0})
        shown = backend.status().as_dict()
        self.assertEqual(shown["alias"], "default")
        self.assertEqual(shown["channels"][0]["name"], "jobs")
        self.assertEqual(shown["channels"][0]["total"], 1)
        self.assertEqual({key for shard in shown["shards"] for key in shard},
                         {"address", "up", "error", "used_memory", "round_trip", "groups",
                          "replies_waiting"})

    def test_names_are_validated(self):
        with self.assertRaises(InvalidChannelName):
            self.make().status(["not a name"])


class MemoryStatusTests(StatusContract, SimpleTestCase):
    def make(self, **options):
        return InMemoryChannelBackend(**options)

    def test_one_shard_this_process(self):
        [shard] = self.make().status().shards
        self.assertTrue(shard.up)
        self.assertIn("memory", shard.address)
        self.assertIsNone(shard.round_trip)

    def test_expired_messages_do_not_count(self):
        backend = self.make(expiry=0.2)
        backend.send("jobs", {"n": 0})
        wait_for(lambda: backend.status().channels == [], timeout=20)


class RedisStatusTests(StatusContract, RedisTestCase):
    def make(self, **options):
        return self.make_backend(**options)

    def test_depth_per_shard_and_server_figures(self):
        backend = self.make()
        for n in range(9):
            backend.send("jobs", {"n": n})
        status = backend.status()
        [jobs] = status.channels
        self.assertEqual(len(jobs.depth), 3)
        self.assertEqual(sum(jobs.depth), 9)
        self.assertGreater(min(jobs.depth), 0)  # sends go to each shard in turn
        for shard, server in zip(status.shards, self.servers, strict=True):
            self.assertEqual(shard.address, f"127.0.0.1:{server.port}")
            self.assertGreater(shard.used_memory, 0)
            self.assertGreater(shard.round_trip, 0)

    def test_scan_pages_through_many_keys(self):
        backend = self.make()
        for n in range(40):
            backend.send(f"jobs.{n}", {"n": n})
        with mock.patch.object(redis_status, "SCAN_COUNT", 3):
            status = backend.status()
        self.assertEqual(len(status.channels), 40)
        self.assertEqual(sum(channel.total for channel in status.channels), 40)

    def test_only_its_own_prefix(self):
        backend, other = self.make(), self.make()
        other.send("jobs", {"n": 0})
        self.assertEqual(backend.status().channels, [])


class RedisShardDownTests(SimpleTestCase):
    def test_a_shard_down_is_reported_down_and_the_others_counted(self):
        stopped = RedisServer().start()
        self.addCleanup(stopped.cleanup)
        backend = redis_backend([*shared_servers(2), stopped])
        self.addCleanup(backend.close)
        # Flushed on the shards that stay up: the stopped one lost it all.
        survivors = redis_backend(shared_servers(2), prefix=backend.prefix)
        self.addCleanup(survivors.close)
        self.addCleanup(survivors.flush)
        for n in range(6):
            backend.send("jobs", {"n": n})
        stopped.stop()
        status = backend.status(["http.request"])
        self.assertEqual([shard.up for shard in status.shards], [True, True, False])
        self.assertIn("unreachable", status.shards[2].error)
        self.assertIsNone(status.shards[2].used_memory)
        jobs = {channel.name: channel for channel in status.channels}["jobs"]
        self.assertIsNone(jobs.depth[2])
        self.assertEqual(jobs.total, 4)  # two went to the stopped shard
        self.assertEqual(status.as_dict()["channels"][0]["depth"][2], None)


class ExecuteManyTests(RedisTestCase):
    shards = 1

    def test_replies_in_order_with_an_error_in_place(self):
        shard = self.make_backend().shards[0]
        replies = shard.execute_many(("PING",), ("INCR", "status-test-not-a-number-x"),
                                     ("LPUSH", "status-test-list", "a"),
                                     ("INCR", "status-test-list"))
        shard.execute("DEL", "status-test-not-a-number-x", "status-test-list")
        self.assertEqual(replies[:3], [b"PONG", 1, 1])
        self.assertIsInstance(replies[3], Exception)
        self.assertEqual(shard.execute("PING"), b"PONG")  # the connection still works


class ConsumerTimeTests(SimpleTestCase):
    def test_durations_total_and_slowest_of_the_last_window(self):
        durations = Durations(window=0.2)
        durations.add(0.05, time.monotonic())
        durations.add(0.01, time.monotonic())
        self.assertAlmostEqual(durations.total, 0.06)
        self.assertEqual(durations.slowest(), 0.05)
        wait_for(lambda: durations.slowest() == 0.0, timeout=20)  # two windows on
        self.assertAlmostEqual(durations.total, 0.06)

    def test_the_worker_heartbeat_says_how_long_consumers_took(self):
        backend = InMemoryChannelBackend(routing={"slow": "tests.test_status_backends.nap"})
        with worker_threads(backend, ["slow"], 1):
            for n in range(3):
                backend.send("slow", {"n": n})

            def record():
                records = backend.heartbeats(WORKER).records
                return records[0] if records and records[0]["handled"] == 3 else None

            wait_for(record, timeout=20)
            beat = record()
        self.assertGreaterEqual(beat["busy"], 3 * NAP)
        self.assertGreaterEqual(beat["slowest"], NAP)
        self.assertLessEqual(beat["slowest"], beat["busy"])


NAP = 0.02


def nap(message):
    time.sleep(NAP)


