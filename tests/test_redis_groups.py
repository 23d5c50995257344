"""Groups on Redis: members on every shard, one call per shard, one entry
per inbox handed out to each member, full members skipped, expiry."""

import time

from channels.exceptions import ChannelFull
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import redis_backend
from tests.support.redis_tests import RedisTestCase, evalsha_calls


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
