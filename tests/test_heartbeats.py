"""Heartbeats in the backends (``set_heartbeat``, ``heartbeats``,
``clear_heartbeat``): the in-memory backend, the Redis backend on real
servers (every shard holds every record; a shard down or restarted), its
reactor client, and the records that workers write of themselves
(channels/worker/heartbeat.py) and skip by (cancelled reply channels)."""

import threading

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from channels.backends.base import BaseChannelBackend
from channels.backends.encoding import encode
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.heartbeats import INTERFACE, RUNNING, STOPPED, WORKER, consumers, live
from channels.interfaces.threaded import ensure_reactor
from channels.names import new_name, process_token
from channels.worker import Worker
from tests.support.redis_servers import RedisServer, redis_backend
from tests.support.worker_threads import wait_for


class HeartbeatContract:
    """What every backend that keeps heartbeats does; ``make(**options)``
    gives a fresh one."""

    def test_records_are_read_back_with_their_time_left(self):
        backend = self.make()
        backend.set_heartbeat(WORKER, "w1", {"id": "w1", "channels": ["http.request"]}, ttl=30)
        backend.set_heartbeat(WORKER, "w2", {"id": "w2"}, ttl=30)
        backend.set_heartbeat(INTERFACE, "s1", {"id": "s1"}, ttl=30)
        records = sorted(backend.heartbeats(WORKER).records, key=lambda r: r["id"])
        self.assertEqual([(r["id"], r.get("channels")) for r in records],
                         [("w1", ["http.request"]), ("w2", None)])
        for record in records:
            self.assertGreater(record["expires_in"], 25)
            self.assertLessEqual(record["expires_in"], 30)
        self.assertEqual([r["id"] for r in backend.heartbeats(INTERFACE).records], ["s1"])

    def test_a_record_replaces_the_last_and_expires_after_its_ttl(self):
        backend = self.make()
        backend.set_heartbeat(WORKER, "w1", {"seq": 1}, ttl=30)
        backend.set_heartbeat(WORKER, "w1", {"seq": 2}, ttl=0.2)
        [record] = backend.heartbeats(WORKER).records
        self.assertEqual(record["seq"], 2)
        wait_for(lambda: not backend.heartbeats(WORKER).records, timeout=20)

    def test_clear_deletes_at_once(self):
        backend = self.make()
        backend.set_heartbeat(WORKER, "w1", {}, ttl=30)
        backend.clear_heartbeat(WORKER, "w1")
        self.assertEqual(backend.heartbeats(WORKER).records, [])

    def test_the_default_ttl_is_heartbeat_ttl(self):
        backend = self.make(heartbeat_interval=1, heartbeat_ttl=3)
        backend.set_heartbeat(WORKER, "w1", {})
        [record] = backend.heartbeats(WORKER).records
        self.assertGreater(record["expires_in"], 2)
        self.assertLessEqual(record["expires_in"], 3)

    def test_complete_once_a_whole_ttl_is_covered(self):
        backend = self.make(heartbeat_interval=0.1, heartbeat_ttl=0.3)
        first = backend.heartbeats(WORKER)
        self.assertFalse(first.complete)
        self.assertLess(first.covered, 0.3)
        wait_for(lambda: backend.heartbeats(WORKER).complete, timeout=20)
        backend.flush()  # as good as a restarted store: nothing is known
        self.assertFalse(backend.heartbeats(WORKER).complete)

    def test_names_are_checked(self):
        backend = self.make()
        for kind, id in (("Worker", "w"), ("wor ker", "w"), ("worker", ""), ("worker", "a:b"),
                         ("worker", "x" * 65), (1, "w")):
            with self.subTest(kind=kind, id=id), self.assertRaises(ValueError):
                backend.set_heartbeat(kind, id, {})
        with self.assertRaises(ValueError):
            backend.set_heartbeat(WORKER, "w", {}, ttl=0)

    def test_records_that_are_not_dicts_are_left_out(self):
        backend = self.make()
        backend.set_heartbeat_encoded(WORKER, "odd", encode({"a": 1})[1:], ttl=30)
        backend.set_heartbeat(WORKER, "w1", {"id": "w1"}, ttl=30)
        self.assertEqual([r["id"] for r in backend.heartbeats(WORKER).records], ["w1"])


class InMemoryHeartbeatTests(HeartbeatContract, SimpleTestCase):
    def make(self, **options):
        return InMemoryChannelBackend(**options)

    def test_settings(self):
        backend = InMemoryChannelBackend()
        self.assertEqual((backend.heartbeat_interval, backend.heartbeat_ttl), (5.0, 15.0))
        for options in ({"heartbeat_interval": 0}, {"heartbeat_ttl": -1},
                        {"heartbeat_interval": "5"}, {"heartbeat_interval": 5, "heartbeat_ttl": 5}):
            with self.subTest(options), self.assertRaises(ImproperlyConfigured) as caught:
                InMemoryChannelBackend(**options)
            self.assertIn("HEARTBEAT_", str(caught.exception))

    def test_a_backend_without_heartbeats(self):
        class Plain(BaseChannelBackend):
            pass

        backend = Plain()
        self.assertFalse(backend.keeps_heartbeats)
        with self.assertRaises(NotImplementedError):
            backend.heartbeats(WORKER)
        with self.assertRaises(NotImplementedError):
            live(WORKER, backend)


class RedisHeartbeatTests(HeartbeatContract, SimpleTestCase):
    def setUp(self):
        self.servers = [RedisServer().start() for _ in range(2)]
        for server in self.servers:
            self.addCleanup(server.cleanup)

    def make(self, **options):
        backend = redis_backend(self.servers, **options)
        self.addCleanup(backend.close)
        return backend

    def test_every_shard_holds_every_record(self):
        backend = self.make()
        backend.set_heartbeat(WORKER, "w1", {"id": "w1"}, ttl=30)
        for server in self.servers:
            client = server.client()
            self.addCleanup(client.close)
            self.assertTrue(client.exists(f"{backend.prefix}h:worker:w1"))
            self.assertEqual(client.smembers(f"{backend.prefix}h:worker"), {b"w1"})

    def test_one_shard_down_hides_nothing_all_down_raises(self):
        backend = self.make(heartbeat_interval=0.1, heartbeat_ttl=0.3)
        clients = [server.client() for server in self.servers]
        for client in clients:
            self.addCleanup(client.close)
        since = backend.layout.heartbeat_read(WORKER)[0][1]

        def each_shard_covers_a_ttl():
            # Each shard on its own, not just the best of them: on a loaded
            # machine one shard may be read for the first time later.
            backend.heartbeats(WORKER)
            for client in clients:
                started, (seconds, micros) = client.get(since), client.time()
                if started is None or seconds * 1000 + micros // 1000 - int(started) < 300:
                    return False
            return True

        wait_for(each_shard_covers_a_ttl, timeout=20)
        backend.set_heartbeat(WORKER, "w1", {"id": "w1"}, ttl=30)
        self.servers[0].stop()
        heartbeats = backend.heartbeats(WORKER)
        self.assertEqual([r["id"] for r in heartbeats.records], ["w1"])
        self.assertTrue(heartbeats.complete)
        backend.set_heartbeat(WORKER, "w2", {"id": "w2"}, ttl=30)  # one shard is enough
        self.servers[1].stop()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.heartbeats(WORKER)
        with self.assertRaises(ChannelBackendUnavailable):
            backend.set_heartbeat(WORKER, "w1", {"id": "w1"})

    def test_a_restarted_shard_is_not_complete_on_its_own(self):
        backend = self.make(heartbeat_interval=1, heartbeat_ttl=3)
        wait_for(lambda: backend.heartbeats(WORKER).complete, timeout=20)
        self.servers[0].stop()
        self.servers[0].start()  # empty
        # The other shard has held them all along: together complete.
        self.assertTrue(backend.heartbeats(WORKER).complete)
        self.servers[1].stop()
        heartbeats = backend.heartbeats(WORKER)
        self.assertFalse(heartbeats.complete)
        self.assertLess(heartbeats.covered, 3)

    def test_the_freshest_copy_wins_and_expired_ids_leave_the_index(self):
        backend = self.make()
        backend.set_heartbeat(WORKER, "w1", {"seq": 1}, ttl=30)
        self.servers[1].stop()
        backend.set_heartbeat(WORKER, "w1", {"seq": 2}, ttl=30)
        self.servers[1].start()  # empty again; seq 1 would be stale anyway
        backend.set_heartbeat(WORKER, "w2", {"seq": 1}, ttl=0.1)
        [w1, *_] = sorted(backend.heartbeats(WORKER).records, key=lambda r: r["seq"],
                          reverse=True)
        self.assertEqual(w1["seq"], 2)
        wait_for(lambda: len(backend.heartbeats(WORKER).records) == 1, timeout=20)
        client = self.servers[1].client()
        self.addCleanup(client.close)
        self.assertEqual(client.smembers(f"{backend.prefix}h:worker"), set())

    def test_the_reactor_client_reads_and_writes_the_same(self):
        ensure_reactor()
        backend = self.make()
        client = backend.layer_client(reactor)

        def call(method, *args):
            return blockingCallFromThread(reactor, getattr(client, method), *args)

        call("set_heartbeat", INTERFACE, "s1", encode({"id": "s1"}), 30)
        backend.set_heartbeat(INTERFACE, "s2", {"id": "s2"}, ttl=30)
        heartbeats = call("heartbeats", INTERFACE)
        self.assertEqual(sorted(r["id"] for r in heartbeats.records), ["s1", "s2"])
        call("clear_heartbeat", INTERFACE, "s2")
        self.assertEqual([r["id"] for r in backend.heartbeats(INTERFACE).records], ["s1"])
        self.servers[0].stop()
        self.assertEqual([r["id"] for r in call("heartbeats", INTERFACE).records], ["s1"])
        self.servers[1].stop()
        with self.assertRaises(ChannelBackendUnavailable):
            call("heartbeats", INTERFACE)
        blockingCallFromThread(reactor, client.stop)


def blocking(message):
    message["release"]  # noqa: B018
    Blocking.started.set()
    Blocking.release.wait(10)
    Blocking.runs.append(message["n"])


class Blocking:
    started = threading.Event()
    release = threading.Event()
    runs: list = []

    @classmethod
    def reset(cls):
        cls.started.clear()
        cls.release.clear()
        cls.runs.clear()


class WorkerRecordTests(SimpleTestCase):
    def setUp(self):
        Blocking.reset()
        self.backend = InMemoryChannelBackend(routing={"test.block": blocking},
                                              heartbeat_interval=0.2, heartbeat_ttl=0.6)

    def run_worker(self, release_after=Worker.release_after):
        worker = Worker(self.backend)
        worker.poll_timeout = 0.02
        worker.release_after = release_after
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(worker.stop)
        self.addCleanup(Blocking.release.set)
        return worker, thread

    def test_the_record_shows_what_the_worker_holds_then_that_it_stopped(self):
        replies = [new_name("!http.response") for _ in range(3)]
        for n, reply in enumerate(replies):
            self.backend.send("test.block", {"n": n, "release": True, "reply_channel": reply})
        # Holds what it took ahead while n=0 runs.
        worker, thread = self.run_worker(release_after=60)
        Blocking.started.wait(20)
        wait_for(lambda: len(live(WORKER, self.backend)[0]["in_hand"]) == 3, timeout=20)
        [record] = live(WORKER, self.backend)
        self.assertEqual(record["id"], process_token())
        self.assertEqual(record["channels"], sorted(worker.channels))
        self.assertIn("test.block", record["channels"])
        self.assertEqual(record["threads"], 1)
        self.assertEqual(sorted(pair[1] for pair in record["in_hand"]), sorted(replies))
        self.assertEqual({pair[0] for pair in record["in_hand"]}, {"test.block"})
        self.assertEqual(consumers([record]), set(worker.channels))
        Blocking.release.set()
        wait_for(lambda: live(WORKER, self.backend)[0]["handled"] == 3, timeout=20)
        self.assertEqual(live(WORKER, self.backend)[0]["in_hand"], [])
        worker.stop()
        thread.join(5)
        [record] = self.backend.heartbeats(WORKER).records
        self.assertEqual(record["state"], STOPPED)
        self.assertEqual((record["channels"], record["in_hand"]), ([], []))
        self.assertEqual(live(WORKER, self.backend), [])

    def test_given_back_messages_leave_the_record(self):
        self.backend.send("test.block", {"n": 0, "release": True})
        self.backend.send("test.block", {"n": 1, "release": True,
                                         "reply_channel": new_name("!http.response")})
        self.run_worker()  # gives back what it took ahead after 0.1 s
        Blocking.started.wait(20)
        wait_for(lambda: live(WORKER, self.backend)[0]["in_hand"] == [], timeout=20)

    def test_workers_of_one_process_share_one_record(self):
        self.run_worker()
        self.run_worker()
        wait_for(lambda: [r["threads"] for r in live(WORKER, self.backend)] == [2], timeout=20)
        self.assertEqual(live(WORKER, self.backend)[0]["state"], RUNNING)

    def test_messages_whose_client_was_answered_are_skipped(self):
        answered, waiting = new_name("!http.response"), new_name("!http.response")
        self.backend.set_heartbeat(INTERFACE, "s1", {"id": "s1", "cancelled": [answered]})
        self.backend.send("test.block", {"n": "answered", "release": True,
                                         "reply_channel": answered})
        self.backend.send("test.block", {"n": "waiting", "release": True,
                                         "reply_channel": waiting})
        Blocking.release.set()
        self.run_worker()
        wait_for(lambda: Blocking.runs, timeout=5)
        self.assertEqual(Blocking.runs, ["waiting"])
        wait_for(lambda: live(WORKER, self.backend)[0]["skipped"] == 1, timeout=20)
        self.assertEqual(live(WORKER, self.backend)[0]["handled"], 1)
