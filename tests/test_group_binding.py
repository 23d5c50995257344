"""Group members bound to their interface process (channels.backends.membership),
on the memory backend and on Redis (throwaway servers): a WebSocket's reply
channel stays while its process's heartbeat lives, with no renewal of its
own; leaves with its process within a TTL, and with its socket at once;
other members expire as before. On Redis, renewing them costs the process
the same however many sockets it holds."""

import threading
import time

from django.test import SimpleTestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.heartbeats import INTERFACE
from channels.names import new_name, process_token, process_wildcard
from tests.support.redis_tests import RedisTestCase, all_commands, bound_members, keys_of
from tests.support.worker_threads import wait_for

WILDCARD = "!websocket.send"


def sockets(n):
    return [new_name(WILDCARD) for _ in range(n)]


class Beating:
    """This process writing an interface heartbeat every ``interval``, as
    an interface server does, until stopped."""

    def __init__(self, backend):
        self.backend = backend
        self.stopped = threading.Event()
        self.beat()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def beat(self):
        self.backend.set_heartbeat(INTERFACE, process_token(), {"id": process_token()})

    def run(self):
        while not self.stopped.wait(self.backend.heartbeat_interval):
            self.beat()

    def stop(self):
        self.stopped.set()
        self.thread.join()


class BindingTests:
    """For both backends; ``make_backend(**options)`` gives one."""

    def quick(self, **options):
        return self.make_backend(heartbeat_interval=0.2, heartbeat_ttl=0.8, **options)

    def received(self, backend):
        return sorted(channel for channel, _ in
                      backend.receive_batch([process_wildcard(WILDCARD)], limit=1000, timeout=0))

    def test_bound_member_outlives_group_expiry_while_its_process_beats(self):
        backend = self.quick(group_expiry=0.3)
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        bound = sockets(3)
        for channel in [*bound, "!fixed.a"]:
            backend.group_add("room", channel)
        self.assertEqual(sorted(backend.group_channels("room")), sorted([*bound, "!fixed.a"]))
        # Well past GROUP_EXPIRY and a few TTLs, nothing renewed but the
        # heartbeat: the period is the subject here, not a synchronisation.
        time.sleep(2.5)
        self.assertEqual(sorted(backend.group_channels("room")), sorted(bound))
        backend.send_group("room", {"text": "still here"})
        self.assertEqual(self.received(backend), sorted(bound))

    def test_members_of_a_process_that_stops_beating_leave_within_a_ttl(self):
        backend = self.quick()
        beating = Beating(backend)
        bound = sockets(4)
        for n, channel in enumerate(bound):
            backend.group_add("room", channel)
            backend.group_add(f"table-{n % 2}", channel)
        backend.group_add("room", "!fixed.b")
        backend.send_group("room", {"n": 1})  # a sender that knows the members
        self.assertEqual(self.received(backend), sorted(bound))
        beating.stop()
        started = time.monotonic()
        wait_for(lambda: backend.group_channels("room") == ["!fixed.b"], timeout=10)
        self.assertLess(time.monotonic() - started, backend.heartbeat_ttl + 5)
        self.assertEqual(backend.group_channels("table-0"), [])
        backend.send_group("room", {"n": 2})
        self.assertEqual(self.received(backend), [])
        self.assertEqual(backend.receive_many(["!fixed.b"])[1], {"n": 1})
        self.assertEqual(backend.receive_many(["!fixed.b"])[1], {"n": 2})

    def test_a_closed_socket_leaves_every_group_and_stays_out(self):
        backend = self.quick()
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        closed, open_ = sockets(2)
        for group in ("a", "b", "c"):
            backend.group_add(group, closed)
        backend.group_add("a", open_)
        backend.send_group("a", {"n": 1})
        self.assertEqual(self.received(backend), sorted([closed, open_]))
        backend.discard_from_groups([closed, "http.request", "!fixed.c"])
        for group in ("b", "c"):
            self.assertEqual(backend.group_channels(group), [])
        self.assertEqual(backend.group_channels("a"), [open_])
        backend.send_group("a", {"n": 2})
        self.assertEqual(self.received(backend), [open_])
        # A consumer that ran late (its websocket.connect waited) adds nothing.
        backend.group_add("a", closed)
        backend.group_add("d", closed, expiry=30)
        self.assertEqual(backend.group_channels("a"), [open_])
        self.assertEqual(backend.group_channels("d"), [])

    def test_discard_of_a_bound_member(self):
        backend = self.quick()
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        gone, kept = sockets(2)
        for channel in (gone, kept):
            backend.group_add("room", channel)
            backend.group_add("other", channel)
        backend.send_group("room", {"n": 1})
        self.received(backend)
        backend.group_discard("room", gone)
        backend.send_group("room", {"n": 2})
        self.assertEqual(self.received(backend), [kept])
        self.assertEqual(sorted(backend.group_channels("other")), sorted([gone, kept]))
        backend.group_add("room", gone)  # not closed: it may come back
        self.assertEqual(sorted(backend.group_channels("room")), sorted([gone, kept]))

    def test_an_expiry_given_still_ends_a_bound_membership(self):
        backend = self.quick()
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        short, long = sockets(2)
        backend.group_add("room", short, expiry=0.3)
        backend.group_add("room", long)
        wait_for(lambda: backend.group_channels("room") == [long], timeout=10)

    def test_without_its_process_heartbeat_a_member_expires_as_before(self):
        backend = self.quick(group_expiry=0.3)
        channel = new_name(WILDCARD)
        backend.group_add("room", channel)
        self.assertEqual(backend.group_channels("room"), [channel])
        wait_for(lambda: backend.group_channels("room") == [], timeout=10)

    def test_bad_arguments(self):
        backend = self.quick()
        with self.assertRaises(TypeError):
            backend.discard_from_groups(new_name(WILDCARD))
        with self.assertRaises(ValueError):
            backend.group_add("room", new_name(WILDCARD), expiry=0)


class MemoryBindingTests(BindingTests, SimpleTestCase):
    def make_backend(self, **options):
        return InMemoryChannelBackend(**options)


class RedisBindingTests(BindingTests, RedisTestCase):
    def members_in_redis(self, backend):
        return bound_members(backend, self.servers)

    def commands(self):
        return sum(all_commands(self.servers).values())

    def test_members_of_a_dead_process_are_gone_from_redis(self):
        backend = self.quick()
        beating = Beating(backend)
        for channel in sockets(20):
            backend.group_add("room", channel)
            backend.group_add("lobby", channel)
        self.assertEqual(self.members_in_redis(backend), 40)
        beating.stop()
        wait_for(lambda: self.members_in_redis(backend) == 0, timeout=10)
        self.assertEqual(keys_of(backend, self.servers[0], "pg:"), [])

    def test_a_closed_socket_leaves_no_member_in_redis(self):
        backend = self.quick()
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        channels = sockets(10)
        for channel in channels:
            for group in ("room", "lobby", "hall"):
                backend.group_add(group, channel)
        self.assertEqual(self.members_in_redis(backend), 30)
        backend.discard_from_groups(channels[:7])
        self.assertEqual(self.members_in_redis(backend), 9)

    def renewal_cost(self, backend, sockets_held):
        backend.set_heartbeat(INTERFACE, process_token(), {"id": process_token()})
        for channel in sockets(sockets_held):
            for group in ("room", "lobby", "hall", "news"):
                backend.group_add(group, channel)
        before = self.commands()
        backend.set_heartbeat(INTERFACE, process_token(), {"id": process_token()})
        return self.commands() - before

    def test_renewal_costs_the_same_for_ten_or_a_thousand_sockets(self):
        few = self.renewal_cost(self.make_backend(), 10)
        many = self.renewal_cost(self.make_backend(), 1000)
        # One script call per shard, whose commands are per group.
        self.assertEqual(few, many)
        self.assertLess(many, 100)


class PresenceAndBindingTests:
    """A channel in a presence (a plain member of its group) and bound to
    its process too is one member: a group message reaches it once."""

    def test_one_message_for_a_member_both_ways(self):
        backend = self.make_backend(heartbeat_interval=0.2, heartbeat_ttl=0.8)
        beating = Beating(backend)
        self.addCleanup(beating.stop)
        channel = new_name(WILDCARD)
        backend.group_add("room", channel)
        backend.presence_join("room", channel, "alice", {}, 60)
        self.assertEqual(backend.group_channels("room"), [channel])
        backend.send_group("room", {"n": 1})
        got = backend.receive_batch([process_wildcard(WILDCARD)], limit=10, timeout=0)
        self.assertEqual([content for _, content in got if "n" in content], [{"n": 1}])


class MemoryPresenceAndBindingTests(PresenceAndBindingTests, SimpleTestCase):
    def make_backend(self, **options):
        return InMemoryChannelBackend(**options)


class RedisPresenceAndBindingTests(PresenceAndBindingTests, RedisTestCase):
    pass
