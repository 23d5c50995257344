"""The Redis backend's own rules: configuration, placement, inboxes,
capacity, expiry, groups across shards, waiting on several shards, and the
redis-py limits it must not trip over."""

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from channels.backends import create_backend
from channels.backends.redis.sharding import Placement, jump_hash, name_hash, shard_for
from channels.checks import check_channel_backends
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import backend_config, redis_backend, shared_servers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def keys_of(backend, server, kind=""):
    """The backend's keys on one server (``kind``: "c:", "i:", ...)."""
    client = server.client()
    try:
        return sorted(key.decode() for key in client.scan_iter(f"{backend.prefix}{kind}*"))
    finally:
        client.close()


def command_calls(server, command):
    """Calls of ``command`` that ``server`` ran so far (not counting those
    it refused, such as NOSCRIPT answers)."""
    client = server.client()
    try:
        stats = client.info("commandstats").get(f"cmdstat_{command}", {})
        return stats.get("calls", 0) - stats.get("failed_calls", 0)
    finally:
        client.close()


def evalsha_calls(server):
    return command_calls(server, "evalsha")


class RedisTestCase(SimpleTestCase):
    shards = 3

    def make_backend(self, shards=None, **options):
        backend = redis_backend(self.servers[:shards], **options)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        return backend

    def setUp(self):
        self.servers = shared_servers(self.shards)


class HostsTests(SimpleTestCase):
    def build(self, hosts):
        return create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend", "HOSTS": hosts})

    def test_accepted_forms(self):
        backend = self.build([("cache", 6380), "redis://:secret@db.example:6390/2",
                              "rediss://tls.example", "unix:///run/redis.sock?db=3"])
        self.assertEqual([a.label for a in backend.addresses],
                         ["cache:6380", "db.example:6390/2", "tls.example:6379",
                          "unix:/run/redis.sock/3"])
        self.assertEqual(backend.addresses[1].options["password"], "secret")
        self.assertEqual(backend.addresses[1].options["db"], 2)
        self.assertEqual(backend.addresses[2].options["connection_class"].__name__,
                         "SSLConnection")

    def test_default_is_localhost(self):
        self.assertEqual([a.label for a in self.build(None).addresses], ["localhost:6379"])

    def test_bad_entries_are_named(self):
        cases = [
            (["redis://a", ("b", "6379")], "['HOSTS'][1] = ('b', '6379')"),
            ([("b", 0)], "['HOSTS'][0] = ('b', 0)"),
            (["http://a"], "['HOSTS'][0] = 'http://a' is not a URL"),
            (["redis://:hunter2@a:99999"], "['HOSTS'][0] = 'redis://:***@a:99999'"),
            (["unix://"], "has no socket path"),
            ([("a", 1), ("a", 1)], "lists a:1 twice"),
            ("redis://a", "must be a non-empty list"),
            ([], "must be a non-empty list"),
            ([["a", 1, 2]], "['HOSTS'][0] = ['a', 1, 2]"),
        ]
        for hosts, message in cases:
            with self.subTest(hosts=hosts), self.assertRaisesMessage(ImproperlyConfigured,
                                                                     message):
                self.build(hosts)

    def test_system_check_names_a_bad_entry(self):
        hosts = [("127.0.0.1", 1), "redis://127.0.0.1:notaport"]
        with override_settings(CHANNEL_BACKENDS={"default": {
                "BACKEND": "channels.backends.redis.RedisChannelBackend", "HOSTS": hosts}}):
            errors = check_channel_backends()
        self.assertEqual([error.id for error in errors], ["channels.E001"])
        self.assertIn("['HOSTS'][1] = 'redis://127.0.0.1:notaport'", errors[0].msg)

    def test_password_never_in_error(self):
        with self.assertRaises(ImproperlyConfigured) as caught:
            self.build(["redis://user:hunter2@a:0x"])
        self.assertNotIn("hunter2", str(caught.exception))

    def test_bad_prefix(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "['PREFIX'] must be a str"):
            create_backend("default", {
                "BACKEND": "channels.backends.redis.RedisChannelBackend", "PREFIX": 3})


class PlacementTests(SimpleTestCase):
    def test_jump_hash_is_stable_and_in_range(self):
        # Values from the reference implementation (Lamping & Veach).
        self.assertEqual([jump_hash(key, 10) for key in (0, 1, 2, 3, 2**64 - 1)],
                         [jump_hash(key, 10) for key in (0, 1, 2, 3, 2**64 - 1)])
        self.assertEqual(jump_hash(0, 1), 0)
        self.assertTrue(all(0 <= jump_hash(name_hash(str(n)), 7) < 7 for n in range(1000)))

    def test_adding_a_shard_moves_about_one_in_n(self):
        names = [f"!chat.{n}" for n in range(20000)]
        for shards in (1, 2, 3, 5, 9):
            with self.subTest(shards=shards):
                before = [shard_for(name, shards) for name in names]
                after = [shard_for(name, shards + 1) for name in names]
                moved = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
                # Only to the new shard, and about 1/(N+1) of them.
                self.assertTrue(all(a == shards for _, a in moved))
                self.assertAlmostEqual(len(moved) / len(names), 1 / (shards + 1), delta=0.02)

    def test_spread_evenly(self):
        counts = [0] * 4
        for n in range(20000):
            counts[shard_for(f"group-{n}", 4)] += 1
        self.assertTrue(all(4500 < count < 5500 for count in counts), counts)

    def test_rules(self):
        placement = Placement(5)
        first, second = new_name("!websocket.send"), new_name("!websocket.send")
        # Rule 1: a process's response channels share an inbox.
        self.assertEqual(placement.home(first), placement.home(second))
        self.assertEqual(placement.home(first)[1], process_wildcard("!websocket.send"))
        self.assertEqual(placement.home(process_wildcard("!websocket.send")),
                         placement.home(first))
        # Rule 2: other response channels and generated names, by their name.
        self.assertEqual(placement.home("!chat"), (shard_for("!chat", 5), None))
        body = new_name("http.request.body")
        self.assertEqual(placement.home(body), (shard_for(body, 5), None))
        self.assertEqual(placement.group_shard("room"), shard_for("room", 5))
        # Rule 3: normal channels have no home.
        self.assertIsNone(placement.home("http.request"))


PLACEMENT_CHILD = """
import json, sys
import django
from django.conf import settings
settings.configure()
django.setup()
from channels.backends import create_backend
config, names = json.loads(sys.argv[1]), json.loads(sys.argv[2])
backend = create_backend("default", config)
placement = {name: backend.placement.home(name) for name in names["channels"]}
placement.update({"group:" + g: backend.placement.group_shard(g) for g in names["groups"]})
for name in names["channels"]:
    backend.send(name, {"from": "child", "to": name})
for group in names["groups"]:
    backend.group_add(group, names["channels"][0])
print(json.dumps(placement))
"""


class PlacementAgreementTests(RedisTestCase):
    def test_two_processes_agree(self):
        """Another process, given the same HOSTS, puts response channels and
        groups where this one looks for them."""
        config = backend_config(self.servers, capacity=1000)
        backend = create_backend("default", config)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        channels = [new_name("!http.response") for _ in range(20)]
        channels += [f"!fixed.{n}" for n in range(20)]
        groups = [f"room-{n}" for n in range(20)]
        child = subprocess.run(
            [sys.executable, "-c", PLACEMENT_CHILD, json.dumps(config),
             json.dumps({"channels": channels, "groups": groups})],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
            env={**os.environ, "PYTHONPATH": ROOT},
        )
        self.assertEqual(child.returncode, 0, child.stderr)
        theirs = json.loads(child.stdout)
        for name in channels:
            self.assertEqual(tuple(theirs[name]), backend.placement.home(name))
        for group in groups:
            self.assertEqual(theirs["group:" + group], backend.placement.group_shard(group))
        # What the child sent is where this process reads it.
        got = {c for c, _ in backend.receive_batch([process_wildcard("!http.response")],
                                                   limit=100, timeout=1)}
        self.assertEqual(got, set(channels[:20]))
        for name in channels[20:]:
            self.assertEqual(backend.receive_many([name])[1], {"from": "child", "to": name})
        for group in groups:
            self.assertEqual(backend.group_channels(group), [channels[0]])


class InboxTests(RedisTestCase):
    def test_a_process_response_channels_share_one_list(self):
        backend = self.make_backend()
        names = [new_name("!websocket.send") for _ in range(50)]
        backend.send_many([(name, {"n": n}) for n, name in enumerate(names)])
        inboxes = [key for server in self.servers for key in keys_of(backend, server, "i:")]
        self.assertEqual(inboxes, [f"{backend.prefix}i:{process_wildcard('!websocket.send')}"])
        lists = [key for server in self.servers for key in keys_of(backend, server, "c:")]
        self.assertEqual(lists, [])
        batch = backend.receive_batch([process_wildcard("!websocket.send")], limit=100,
                                      timeout=1)
        self.assertEqual(batch, [(name, {"n": n}) for n, name in enumerate(names)])

    def test_capacity_per_response_channel_in_a_shared_inbox(self):
        backend = self.make_backend(capacity=100, channel_capacity={"!*": 2})
        slow, other = new_name("!websocket.send"), new_name("!websocket.send")
        backend.send(slow, {"n": 1})
        backend.send(slow, {"n": 2})
        with self.assertRaisesMessage(ChannelFull, repr(slow)):
            backend.send(slow, {"n": 3})
        backend.send(other, {"n": 1})
        backend.send(other, {"n": 2})
        self.assertEqual(backend.send_many([(slow, {}), (other, {})]), [slow, other])
        wildcard = process_wildcard("!websocket.send")
        self.assertEqual(len(backend.receive_batch([wildcard], limit=3, timeout=0)), 3)
        backend.send(slow, {"n": 4})  # one of slow's was read: room again
        # A blocking pop settles its message's count as well.
        self.assertIsNotNone(backend.receive_many_blocking([wildcard], 1)[0])
        backend.send(other, {"n": 3})

    def test_receiving_one_generated_channel(self):
        backend = self.make_backend()
        first, second = new_name("!http.response"), new_name("!http.response")
        backend.send(first, {"n": 1})
        backend.send(second, {"n": 2})
        backend.send(first, {"n": 3})
        self.assertEqual(backend.receive_many([second]), (second, {"n": 2}))
        self.assertEqual(backend.receive_many_blocking([first], 1), (first, {"n": 1}))
        threading.Timer(0.05, backend.send, (second, {"n": 4})).start()
        self.assertEqual(backend.receive_many_blocking([second], 2), (second, {"n": 4}))
        self.assertEqual(backend.receive_many([process_wildcard("!http.response")]),
                         (first, {"n": 3}))

    def test_wildcard_of_a_normal_prefix_is_refused(self):
        backend = self.make_backend()
        with self.assertRaisesMessage(ValueError, "response channels only"):
            backend.receive_many([process_wildcard("http.request.body")])

    def test_body_channel_has_its_own_list(self):
        backend = self.make_backend()
        body = new_name("http.request.body")
        for n in range(3):
            backend.send(body, {"n": n})
        self.assertEqual([backend.receive_many_blocking([body], 1)[1]["n"] for _ in range(3)],
                         [0, 1, 2])


class ExpiryTests(RedisTestCase):
    def test_expired_messages_are_never_delivered(self):
        backend = self.make_backend(expiry=0.05)
        response = new_name("!http.response")
        backend.send("q", {})
        backend.send(response, {})
        backend.send("!fixed", {})
        time.sleep(0.06)
        self.assertEqual(backend.receive_many(["q", "!fixed"]), (None, None))
        self.assertEqual(backend.receive_many_blocking(["q", "!fixed"], 0.05), (None, None))
        self.assertEqual(backend.receive_batch([process_wildcard("!http.response")],
                                               timeout=0.05), [])

    def test_expired_message_is_skipped_by_a_blocking_pop(self):
        backend = self.make_backend(expiry=0.05, shards=1)
        backend.send("q", {"old": True})
        time.sleep(0.06)
        threading.Timer(0.05, backend.send, ("q", {"old": False})).start()
        self.assertEqual(backend.receive_many_blocking(["q"], 2), ("q", {"old": False}))

    def test_unread_channels_leave_nothing_behind(self):
        backend = self.make_backend(expiry=0.1, group_expiry=0.1)
        for n in range(6):
            backend.send(f"q{n}", {})
        backend.send(new_name("!websocket.send"), {})
        backend.send("!fixed", {})
        backend.group_add("room", "!fixed")
        self.assertTrue(any(keys_of(backend, server) for server in self.servers))
        time.sleep(0.15)
        for server in self.servers:
            client = server.client()
            # EXISTS expires a key whose TTL has passed, as Redis would soon.
            left = [k for k in keys_of(backend, server) if client.exists(k)]
            client.close()
            self.assertEqual(left, [], server)

    def test_keys_expire_with_their_last_message(self):
        backend = self.make_backend(expiry=30, shards=1)
        backend.send("q", {})
        client = self.servers[0].client()
        ttl = client.pttl(f"{backend.prefix}c:q")
        client.close()
        self.assertTrue(29000 < ttl <= 30000, ttl)


class NormalChannelTests(RedisTestCase):
    def test_sends_are_spread_over_shards(self):
        backend = self.make_backend()
        for n in range(30):
            backend.send("http.request", {"n": n})
        lengths = []
        for server in self.servers:
            client = server.client()
            lengths.append(client.llen(f"{backend.prefix}c:http.request"))
            client.close()
        self.assertEqual(lengths, [10, 10, 10])
        got = sorted(backend.receive_many_blocking(["http.request"], 1)[1]["n"]
                     for _ in range(30))
        self.assertEqual(got, list(range(30)))

    def test_capacity_is_per_shard_list_and_full_shards_are_skipped(self):
        backend = self.make_backend(capacity=2)
        for _ in range(6):
            backend.send("q", {})
        with self.assertRaisesMessage(ChannelFull, "'q' is full"):
            backend.send("q", {})
        backend.receive_many(["q"])
        backend.send("q", {})  # whichever shard has room takes it
        self.assertEqual(backend.send_many([("q", {})]), ["q"])

    def test_order_within_a_shard(self):
        backend = self.make_backend(capacity=1000, shards=1)
        backend.send_many([("q", {"n": n}) for n in range(200)])
        got = [m["n"] for _, m in backend.receive_batch(["q"], limit=200, timeout=0)]
        self.assertEqual(got, list(range(200)))


class BatchTests(RedisTestCase):
    def test_send_many_is_one_call_per_shard(self):
        backend = self.make_backend(capacity=1000)
        backend.send("warm", {})
        backend.receive_many(["warm"])
        responses = [new_name("!websocket.send") for _ in range(100)]
        fixed = [f"!fixed.{n}" for n in range(30)]
        for _ in self.servers:  # load the script everywhere first
            backend.send_many([("warm", {})])
        backend.flush()
        before = [evalsha_calls(server) for server in self.servers]
        full = backend.send_many([(name, {}) for name in responses + fixed]
                                 + [("http.request", {"n": n}) for n in range(100)])
        after = [evalsha_calls(server) for server in self.servers]
        self.assertEqual(full, [])
        self.assertTrue(all(a - b <= 1 for a, b in zip(after, before, strict=True)),
                        (before, after))
        got = backend.receive_batch(["http.request"], limit=100, timeout=0)
        self.assertEqual([m["n"] for _, m in got], list(range(100)))

    def test_a_busy_worker_takes_up_to_its_limit_in_one_pop(self):
        backend = self.make_backend(shards=1)
        backend.send_many([("q", {"n": n}) for n in range(20)])
        before = command_calls(self.servers[0], "blmpop"), evalsha_calls(self.servers[0])
        got = backend.receive_batch(["q"], limit=8, timeout=1)
        after = command_calls(self.servers[0], "blmpop"), evalsha_calls(self.servers[0])
        self.assertEqual([m["n"] for _, m in got], list(range(8)))
        self.assertEqual((after[0] - before[0], after[1] - before[1]), (1, 0))
        got = backend.receive_batch(["q"], limit=8, timeout=1)
        self.assertEqual([m["n"] for _, m in got], list(range(8, 16)))

    def test_receive_batch_after_waiting_takes_the_rest_too(self):
        backend = self.make_backend()
        wildcard, name = process_wildcard("!websocket.send"), new_name("!websocket.send")
        threading.Timer(0.05, backend.send_many,
                        ([(name, {"n": n}) for n in range(5)],)).start()
        batch = backend.receive_batch([wildcard], limit=10, timeout=2)
        self.assertEqual([m["n"] for _, m in batch], [0, 1, 2, 3, 4])
        # Counts were settled for all five: capacity is free again.
        client = self.servers[backend.placement.home(name)[0]].client()
        self.assertEqual(client.hlen(f"{backend.prefix}n:{wildcard}"), 0)
        client.close()


class GroupTests(RedisTestCase):
    def test_members_on_every_shard(self):
        backend = self.make_backend()
        members = [new_name("!websocket.send") for _ in range(3)]
        members += [f"!fixed.{n}" for n in range(12)] + ["chat.log"]
        homes = {backend.placement.home(m)[0] for m in members if m.startswith("!")}
        self.assertEqual(homes, {0, 1, 2})
        for member in members:
            backend.group_add("room", member)
        backend.send_group("room", {"text": "hi"})
        got = backend.receive_batch([process_wildcard("!websocket.send")], timeout=1)
        self.assertEqual(sorted(c for c, _ in got), sorted(members[:3]))
        for member in members[3:]:
            self.assertEqual(backend.receive_many([member]), (member, {"text": "hi"}))

    def test_send_group_is_one_call_per_shard(self):
        backend = self.make_backend()
        members = [new_name("!websocket.send") for _ in range(300)] + ["!a", "!b", "!c"]
        members += ["chat.log"]  # a normal channel: on the next shard in turn
        for member in members:
            backend.group_add("room", member)
        backend.send_group("room", {"n": 0})  # learns where members go
        for n in range(1, 7):
            before = [evalsha_calls(server) for server in self.servers]
            backend.send_group("room", {"n": n})
            after = [evalsha_calls(server) for server in self.servers]
            self.assertTrue(all(a - b <= 1 for a, b in zip(after, before, strict=True)),
                            (before, after))
        got = []
        while (message := backend.receive_many(["chat.log"]))[0]:
            got.append(message[1]["n"])
        self.assertEqual(sorted(got), list(range(7)))
        batch = backend.receive_batch([process_wildcard("!websocket.send")], limit=5000,
                                      timeout=0)
        self.assertEqual(len(batch), 300 * 7)
        for name in ("!a", "!b", "!c"):
            got = [backend.receive_many([name])[1] for _ in range(8)]
            self.assertEqual(got, [{"n": n} for n in range(7)] + [None])

    def test_full_members_skipped_never_raising(self):
        backend = self.make_backend(channel_capacity={"!*": 1})
        full, free = new_name("!websocket.send"), new_name("!websocket.send")
        backend.send(full, {"first": True})
        backend.send("!fixed", {"first": True})
        for member in (full, free, "!fixed"):
            backend.group_add("room", member)
        backend.send_group("room", {"group": True})
        got = backend.receive_batch([process_wildcard("!websocket.send")], timeout=1)
        self.assertEqual(sorted(got, key=lambda item: item[0] != full),
                         [(full, {"first": True}), (free, {"group": True})])
        self.assertEqual(backend.receive_many(["!fixed"]), ("!fixed", {"first": True}))
        self.assertEqual(backend.receive_many(["!fixed"]), (None, None))

    def test_a_thousand_members_in_an_inbox(self):
        backend = self.make_backend(capacity=5)
        members = [new_name("!websocket.send") for _ in range(1000)]
        for member in members:
            backend.group_add("big", member)
        for n in range(6):
            backend.send_group("big", {"n": n})
        wildcard = process_wildcard("!websocket.send")
        got = []
        while batch := backend.receive_batch([wildcard], limit=1000, timeout=0):
            got += batch
        self.assertEqual(len(got), 5000)  # the sixth found every member full
        self.assertEqual({m["n"] for _, m in got}, {0, 1, 2, 3, 4})

    def test_group_message_handed_out_within_the_limit(self):
        """One stored group message for ten members of an inbox comes out
        as ten messages, ``limit`` at a time, and before later messages."""
        backend = self.make_backend()
        members = [new_name("!websocket.send") for _ in range(10)]
        for member in members:
            backend.group_add("room", member)
        backend.send_group("room", {"n": 1})
        backend.send(members[0], {"n": 2})
        wildcard = process_wildcard("!websocket.send")
        sizes, got = [], []
        while batch := backend.receive_batch([wildcard], limit=3, timeout=0):
            sizes.append(len(batch))
            got += batch
        self.assertEqual(sizes, [3, 3, 3, 2])
        self.assertEqual(sorted(got[:10]), sorted((member, {"n": 1}) for member in members))
        self.assertEqual(got[10], (members[0], {"n": 2}))
        backend.send_group("room", {"n": 3})
        got = [backend.receive_many([wildcard]), backend.receive_many_blocking([wildcard], 1)]
        got += backend.receive_batch([wildcard], limit=100, timeout=0)
        self.assertEqual(sorted(got), sorted((member, {"n": 3}) for member in members))

    def test_handed_out_messages_still_expire(self):
        backend = self.make_backend(expiry=0.05)
        members = [new_name("!websocket.send") for _ in range(3)]
        for member in members:
            backend.group_add("room", member)
        backend.send_group("room", {})
        wildcard = process_wildcard("!websocket.send")
        self.assertEqual(len(backend.receive_batch([wildcard], limit=1, timeout=0)), 1)
        time.sleep(0.06)
        self.assertEqual(backend.receive_batch([wildcard], limit=10, timeout=0), [])

    def test_flush_drops_messages_not_yet_handed_out(self):
        backend = self.make_backend()
        for _ in range(3):
            backend.group_add("room", new_name("!websocket.send"))
        backend.send_group("room", {})
        wildcard = process_wildcard("!websocket.send")
        self.assertEqual(len(backend.receive_batch([wildcard], limit=1, timeout=0)), 1)
        backend.flush()
        self.assertEqual(backend.receive_batch([wildcard], limit=10, timeout=0), [])

    def test_group_messages_count_against_an_inbox(self):
        backend = self.make_backend(channel_capacity={"!*": 2})
        member, bystander = new_name("!websocket.send"), new_name("!websocket.send")
        backend.group_add("room", member)
        backend.send_group("room", {"n": 1})
        backend.send_group("room", {"n": 2})
        backend.send_group("room", {"n": 3})  # full: left out
        with self.assertRaises(ChannelFull):
            backend.send(bystander, {})
        wildcard = process_wildcard("!websocket.send")
        got = backend.receive_batch([wildcard], limit=10, timeout=0)
        self.assertEqual([m["n"] for _, m in got], [1, 2])
        backend.send(bystander, {})

    def test_a_sender_sees_members_that_another_process_changed(self):
        sender = self.make_backend()
        other = redis_backend(self.servers, prefix=sender.prefix)
        self.addCleanup(other.close)
        other.group_add("room", "!a")
        other.group_add("room", "!b", expiry=0.3)
        sender.send_group("room", {"n": 1})
        other.group_add("room", "!c")
        other.group_add("room", "!a")  # a renewal changes nothing
        other.group_discard("room", "!a")
        sender.send_group("room", {"n": 2})
        time.sleep(0.35)
        sender.send_group("room", {"n": 3})

        def got(channel):
            messages = []
            while (message := sender.receive_many([channel]))[0]:
                messages.append(message[1]["n"])
            return messages

        self.assertEqual((got("!a"), got("!b"), got("!c")), ([1], [1, 2], [2, 3]))

    def test_group_and_members_expire(self):
        backend = self.make_backend(group_expiry=0.1)
        backend.group_add("room", "!short")
        backend.group_add("room", "!long", expiry=0.3)
        time.sleep(0.15)
        self.assertEqual(backend.group_channels("room"), ["!long"])
        backend.send_group("room", {})
        self.assertEqual(backend.receive_many(["!short"]), (None, None))
        self.assertEqual(backend.receive_many(["!long"]), ("!long", {}))
        time.sleep(0.2)
        server = self.servers[backend.placement.group_shard("room")]
        client = server.client()
        self.assertFalse(client.exists(f"{backend.prefix}g:room"))
        client.close()


class WaitingOnSeveralShardsTests(RedisTestCase):
    def test_prompt_wake_from_any_shard(self):
        backend = self.make_backend()
        listen = ["!fixed.0", "!fixed.2", "!fixed.6", "q"]
        self.assertEqual({backend.placement.home(c)[0] for c in listen[:3]}, {0, 1, 2})
        backend.receive_many_blocking(listen, 0.01)
        for target in listen[:3]:
            sent = []
            timer = threading.Timer(0.05, lambda target=target, sent=sent: (
                sent.append(time.monotonic()), backend.send(target, {"to": target})))
            timer.start()
            self.assertEqual(backend.receive_many_blocking(listen, 5), (target, {"to": target}))
            woke = time.monotonic()
            timer.join()
            self.assertLess(woke - sent[0], 0.2)

    def test_no_message_held_by_a_busy_receiver(self):
        """Two messages arrive on two shards at once: the receiver that takes
        one leaves the other for the next receiver, whatever the timing."""
        busy = self.make_backend()
        other = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(other.close)
        sender = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(sender.close)
        for round_ in range(30):
            thread = threading.Thread(
                target=lambda: sender.send_many([("q", {"n": 1}), ("!fixed.1", {"n": 2}),
                                                 ("!fixed.2", {"n": 3})]))
            thread.start()
            first = busy.receive_many_blocking(["q", "!fixed.1", "!fixed.2"], 5)
            thread.join()
            # A message that a losing pop took goes back within moments,
            # while the busy receiver is away handling its own.
            rest = [other.receive_many_blocking(["q", "!fixed.1", "!fixed.2"], 0.5)
                    for _ in range(2)]
            got = sorted(m["n"] for _, m in [first, *rest] if m is not None)
            self.assertEqual(got, [1, 2, 3], round_)
            self.assertEqual(other.receive_many(["q", "!fixed.1", "!fixed.2"]), (None, None))

    def test_what_a_losing_pop_took_goes_back_in_order(self):
        """Batches arrive on three shards at once: the pops that lose give
        back everything they took, to the head, in order."""
        busy = self.make_backend()
        other = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(other.close)
        sender = redis_backend(self.servers, prefix=busy.prefix)
        self.addCleanup(sender.close)
        channels = ["!fixed.0", "!fixed.2", "!fixed.6"]
        self.assertEqual(len({busy.placement.home(c)[0] for c in channels}), 3)
        for round_ in range(20):
            sent = [(channel, {"n": n}) for channel in channels for n in range(6)]
            thread = threading.Timer(0.02, sender.send_many, (sent,))  # once all pops wait
            thread.start()
            got = busy.receive_batch(channels, limit=4, timeout=5)
            thread.join()
            time.sleep(0.05)  # the losing pops are released
            got += other.receive_batch(channels, limit=100, timeout=0)
            got += other.receive_batch(channels, limit=100, timeout=0)
            got += other.receive_batch(channels, limit=100, timeout=0)
            self.assertEqual(sorted((c, m["n"]) for c, m in got),
                             sorted((c, m["n"]) for c, m in sent), round_)
            for channel in channels:
                order = [m["n"] for c, m in got if c == channel]
                self.assertEqual(order, sorted(order), (round_, channel))

    def test_a_wait_on_one_shard_after_a_wait_on_several(self):
        """Connections released after one wait still wait the next time."""
        backend = self.make_backend()
        for _ in range(3):
            threading.Timer(0.1, backend.send, ("!fixed.2", {})).start()
            self.assertEqual(backend.receive_many_blocking(["!fixed.0", "!fixed.2", "!fixed.6"],
                                                           2)[0], "!fixed.2")
            time.sleep(0.2)  # the other pops are released
            before = command_calls(self.servers[0], "blmpop")
            self.assertEqual(backend.receive_many_blocking(["!fixed.0"], 0.2), (None, None))
            # One wait on Redis, not a loop of waits cancelled at once.
            self.assertEqual(command_calls(self.servers[0], "blmpop") - before, 1)

    def test_idle_listener_outlives_redis_py_socket_timeout(self):
        backend = self.make_backend()
        threading.Timer(5.5, backend.send, ("!fixed.1", {"late": True})).start()
        started = time.monotonic()
        self.assertEqual(backend.receive_many_blocking(["q", "!fixed.1"], 10),
                         ("!fixed.1", {"late": True}))
        self.assertGreater(time.monotonic() - started, 5.4)

    def test_bursts_beyond_a_hundred_connections(self):
        """150 threads send at once (redis-py's default pool refuses a
        101st connection) while 50 wait on three shards."""
        backend = self.make_backend(capacity=1000)
        received, errors = [], []
        start = threading.Barrier(200)

        def receive():
            try:
                start.wait()
                deadline = time.monotonic() + 20
                while len(received) < 150 and time.monotonic() < deadline:
                    channel, message = backend.receive_many_blocking(["q", "!fixed.1"], 0.5)
                    if channel is not None:
                        received.append(message["n"])
            except Exception as exc:  # a failure must reach the assertion below
                errors.append(exc)

        def send(n):
            try:
                start.wait()
                backend.send("q", {"n": n})
            except Exception as exc:
                errors.append(exc)

        threads = [threading.Thread(target=receive) for _ in range(50)]
        threads += [threading.Thread(target=send, args=(n,)) for n in range(150)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(received), list(range(150)))


class UnreachableTests(SimpleTestCase):
    def test_unreachable_redis_fails_fast(self):
        server = shared_servers(1)[0]
        with socket.socket() as probe:  # a port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        backend = create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": [("127.0.0.1", port)]})
        self.addCleanup(backend.close)
        for call in (lambda: backend.send("q", {}),
                     lambda: backend.receive_many_blocking(["q"], 5),
                     lambda: backend.send(new_name("!x"), {}),
                     lambda: backend.group_add("g", "q")):
            started = time.monotonic()
            with self.assertRaisesMessage(ChannelBackendUnavailable,
                                          f"127.0.0.1:{port} of channel backend 'default'"):
                call()
            self.assertLess(time.monotonic() - started, 1.0)
        self.assertTrue(server.running)

    def test_something_else_on_the_port(self):
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def answer():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                connection.close()

        threading.Thread(target=answer, daemon=True).start()
        backend = create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": [listener.getsockname()]})
        self.addCleanup(backend.close)
        started = time.monotonic()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.send("q", {})
        self.assertLess(time.monotonic() - started, 1.0)


class ScalingDocTests(SimpleTestCase):
    def test_configuration_example_builds_a_backend(self):
        """The CHANNEL_BACKENDS example of docs/scaling.rst is valid."""
        with open(os.path.join(ROOT, "docs", "scaling.rst")) as doc:
            text = doc.read()
        block = text.split(".. code-block:: python\n\n", 1)[1].split("\n\n``HOSTS``")[0]
        namespace = {}
        exec(textwrap.dedent(block), namespace)
        config = namespace["CHANNEL_BACKENDS"]["default"]
        backend = create_backend("default", config)
        self.assertEqual(len(backend.addresses), 3)
        self.assertEqual(backend.capacity_for(new_name("!websocket.send")), 20)
        self.assertEqual(backend.capacity_for(new_name("http.request.body")), 4)
        self.assertEqual(backend.addresses[0].options["password"], "s3cret")
