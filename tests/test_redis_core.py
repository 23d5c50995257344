"""The Redis backend's I/O-free rules (layout.py, sending.py, receiving.py),
driven directly, as both of its clients drive them, with no server: a
backend over three shards that nothing listens on is never connected to
here."""

from django.test import SimpleTestCase

from channels.backends.redis.layout import now_ms, open_entry, unpack
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import redis_backend
from tests.support.redis_tests import on_shard

HOSTS = ["redis://127.0.0.1:1", "redis://127.0.0.2:1", "redis://127.0.0.3:1"]
WILDCARD = process_wildcard("!websocket.send")


def outcome(plan):
    return [(position, type(error)) for position, error in sorted(plan.failures)]


class CoreTestCase(SimpleTestCase):
    def setUp(self):
        self.backend = redis_backend([], hosts=HOSTS, capacity=7, expiry=30)
        self.addCleanup(self.backend.close)

    def down(self, index):
        with self.assertLogs("channels.backends.redis", "ERROR"):
            self.backend.shards[index].failed(OSError("test"))


class SendPlanTests(CoreTestCase):
    def batch(self):
        home0, home2 = on_shard(self.backend, 0), on_shard(self.backend, 2)
        return [("q", b"a"), (home0, b"b"), (home2, b"c"), ("q", b"d"), (home0, b"e")]

    def test_one_call_per_shard_normal_channels_with_the_shard_in_turn(self):
        firsts = set()
        for _ in range(6):
            plan = self.backend.send_plan(self.batch())
            calls = dict(plan.calls)
            self.assertEqual(len(calls), len(plan.calls))
            first = next(index for index, positions in calls.items() if 0 in positions)
            firsts.add(first)
            expected = {0: [1, 4], 2: [2]}
            expected[first] = expected.get(first, []) + [0, 3]
            self.assertEqual(calls, expected)
        self.assertEqual(firsts, {0, 1, 2})  # in turn

    def test_command(self):
        plan = self.backend.send_plan(self.batch())
        home0 = self.batch()[1][0]
        self.assertEqual(plan.command([4, 0]), [
            plan.now, 30000,
            self.backend.layout.list_key(home0), "",
            b"%d %s e" % (plan.now + 30000, home0.encode()), home0, 7,
            self.backend.layout.list_key("q"), "", b"%d q a" % (plan.now + 30000), "q", 7,
        ])

    def test_all_sent(self):
        plan = self.backend.send_plan(self.batch())
        for index, positions in plan.calls:
            plan.answered(index, positions, [])
        self.assertIsNone(plan.retry())
        self.assertEqual(plan.failures, [])
        self.assertEqual(plan.refused(), [])

    def test_refused_normal_messages_try_the_other_shards_in_one_call_each(self):
        plan = self.backend.send_plan(self.batch())
        (first, positions), = [call for call in plan.calls if 0 in call[1]]
        for index, sent in plan.calls:
            # The shard in turn finds "q" full; a home shard refuses "e".
            full = [sent.index(p) + 1 for p in sent if p in (0, 3, 4)]
            plan.answered(index, sent, full)
        second = plan.retry()
        self.assertNotEqual(second[0], first)
        self.assertEqual(second[1], [0, 3])
        plan.answered(second[0], second[1], [2])  # takes one of two
        third = plan.retry()
        self.assertNotIn(third[0], (first, second[0]))
        self.assertEqual(third[1], [3])
        plan.answered(third[0], third[1], [1])
        self.assertIsNone(plan.retry())
        self.assertEqual(outcome(plan), [(3, ChannelFull), (4, ChannelFull)])
        self.assertEqual(plan.refused(), ["q", self.batch()[4][0]])

    def test_normal_messages_not_reached_anywhere_are_unreachable(self):
        plan = self.backend.send_plan([("q", b"a"), ("q", b"b")])
        (index, positions), = plan.calls
        error = ChannelBackendUnavailable("first")
        plan.failed(index, positions, error)
        while (call := plan.retry()) is not None:
            plan.failed(*call, ChannelBackendUnavailable("other"))
        self.assertEqual(plan.failures, [(0, error), (1, error)])
        with self.assertRaisesMessage(ChannelBackendUnavailable, "first"):
            plan.refused()

    def test_not_reached_first_then_full_elsewhere_is_full(self):
        plan = self.backend.send_plan([("q", b"a")])
        (index, positions), = plan.calls
        plan.failed(index, positions, ChannelBackendUnavailable("first"))
        call = plan.retry()
        self.assertEqual(call[1], [0])
        plan.answered(*call, [1])
        plan.failed(*plan.retry(), ChannelBackendUnavailable("third"))
        self.assertIsNone(plan.retry())
        self.assertEqual(outcome(plan), [(0, ChannelFull)])

    def test_a_home_shard_that_fails_fails_its_messages_only(self):
        batch = self.batch()
        plan = self.backend.send_plan(batch)
        error = ChannelBackendUnavailable("shard 0")
        for index, positions in plan.calls:
            if index == 0:
                plan.failed(index, positions, error)
            else:
                plan.answered(index, positions, [])
        while (call := plan.retry()) is not None:
            plan.answered(*call, [])
        self.assertEqual(sorted(plan.failures), [(1, error), (4, error)])

    def test_shards_known_down_are_left_out(self):
        self.down(1)
        for _ in range(6):
            plan = self.backend.send_plan([("q", b"a")])
            (index, positions), = plan.calls
            self.assertNotEqual(index, 1)
            plan.answered(index, positions, [1])
            other = plan.retry()
            self.assertNotIn(other[0], (1, index))
            plan.answered(*other, [1])
            self.assertIsNone(plan.retry())

    def test_every_shard_down(self):
        for index in range(3):
            self.down(index)
        plan = self.backend.send_plan(self.batch())
        self.assertEqual(sorted(index for index, _ in plan.calls), [0, 2])  # tried anyway
        self.assertEqual(outcome(plan), [(0, ChannelBackendUnavailable),
                                         (3, ChannelBackendUnavailable)])


class ReceivePlanTests(CoreTestCase):
    def test_sources_per_shard(self):
        fixed = on_shard(self.backend, 1)
        plan = self.backend.receive_plan([WILDCARD, "q", fixed, "q"])
        self.assertIs(self.backend.receive_plan([WILDCARD, "q", fixed, "q"]), plan)
        layout = self.backend.layout
        inbox_shard = self.backend.placement.home(WILDCARD)[0]
        expected = {index: [(layout.list_key("q"), "", "")] for index in range(3)}
        expected[1].append((layout.list_key(fixed), "", ""))
        expected[inbox_shard].insert(0, (*layout.inbox_keys(WILDCARD), ""))
        self.assertEqual({index: [source.args() for source in sources]
                          for index, sources in plan.sources.items()}, expected)
        self.assertEqual(plan.inboxes, [WILDCARD])
        self.assertEqual(set(plan.plain_keys), {0, 1, 2} - {inbox_shard})
        args = plan.receive_args(inbox_shard, 5, 10, ("counts", b"!x"))
        self.assertEqual(args[:2] + args[3:5], [5, 10, "counts", b"!x"])
        self.assertIn(args[2], range(len(expected[inbox_shard])))
        self.assertEqual(args[5:], [arg for source in expected[inbox_shard] for arg in source])
        self.assertEqual(plan.receive_args(inbox_shard, 5, 10)[3:5], ["", ""])
        self.assertEqual(sorted(plan.blocking_keys(1)), sorted(key for key, _, _ in expected[1]))

    def test_one_generated_channel_in_an_inbox(self):
        channel = new_name("!websocket.send")
        plan = self.backend.receive_plan([channel])
        (source,) = [source for sources in plan.sources.values() for source in sources]
        self.assertEqual(source.only, channel)
        self.assertTrue(plan.pollable_only)
        self.assertEqual(plan.inboxes, [])  # its group messages: through the wildcard

    def test_settlement(self):
        plan = self.backend.receive_plan([WILDCARD, "q"])
        inbox, counts = self.backend.layout.inbox_keys(WILDCARD)
        channel = new_name("!websocket.send")
        entry = self.backend.layout.entry(channel, b"data", now_ms())
        self.assertEqual(plan.settlement(inbox.encode(), [entry]), (counts, channel.encode()))
        self.assertIsNone(plan.settlement(self.backend.layout.list_key("q").encode(), [entry]))

    def test_refuses_the_wildcard_of_a_normal_prefix(self):
        with self.assertRaisesMessage(ValueError, "response channels only"):
            self.backend.receive_plan([process_wildcard("http.request.body")])


class EntryTests(CoreTestCase):
    def test_entries_open_into_messages_and_group_members(self):
        layout = self.backend.layout
        now = now_ms()
        entry = layout.entry("!a", b"x y", now)
        self.assertEqual(open_entry(entry, now), [(now + 30000, "!a", b"x y")])
        self.assertEqual(open_entry(entry, now + 30000), [])  # expired
        group = b"%d * !a,!b data" % (now + 5)
        self.assertEqual(open_entry(group, now),
                         [(now + 5, "!a", b"data"), (now + 5, "!b", b"data")])
        entries = [entry, group, b""]
        self.assertEqual(unpack([b",".join(b"%d" % len(e) for e in entries), b"".join(entries)]),
                         entries)
        self.assertEqual(unpack([b"", b""]), [])

    def test_members_beyond_the_limit_wait_for_the_next_receive(self):
        receiving, plan = self.backend.receiving, self.backend.receive_plan([WILDCARD])
        members = [new_name("!websocket.send") for _ in range(5)]
        now = now_ms()
        group = b"%d * %s data" % (now + 1000, ",".join(members).encode())
        own = self.backend.layout.entry(members[0], b"own", now)
        self.assertEqual(receiving.deliver([own, group], now, 2),
                         [(members[0], b"own"), (members[0], b"data")])
        self.assertEqual(receiving.waiting(plan, 3), [(m, b"data") for m in members[1:4]])
        self.assertEqual(receiving.waiting(plan, 3), [(members[4], b"data")])
        self.assertEqual(receiving.waiting(plan, 3), [])
        receiving.deliver([group], now, 1)
        self.assertEqual(receiving.waiting(self.backend.receive_plan(["q"]), 10), [])
        receiving.clear()
        self.assertEqual(receiving.waiting(plan, 10), [])

    def test_waiting_members_expire(self):
        receiving, plan = self.backend.receiving, self.backend.receive_plan([WILDCARD])
        members = [new_name("!websocket.send") for _ in range(3)]
        taken_at = now_ms() - 10000  # read ten seconds ago
        group = b"%d * %s data" % (taken_at + 5000, ",".join(members).encode())
        self.assertEqual(len(receiving.deliver([group], taken_at, 1)), 1)
        self.assertEqual(receiving.waiting(plan, 10), [])  # expired since
