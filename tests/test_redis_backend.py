"""The Redis backend against the backend contract (the memory backend's
tests, run on one shard and on three), plus what only Redis has."""

import os

from django.test import SimpleTestCase

from channels.backends.redis import RedisChannelBackend
from channels.names import new_name
from tests import test_memory_backend as contract
from tests.support.redis_servers import redis_backend, shared_servers


class RedisBackendMixin:
    """Backends over the shared test servers, each with its own PREFIX,
    flushed and closed after the test."""

    shards = 1

    def make_backend(self, **options):
        backend = redis_backend(shared_servers(self.shards), **options)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        return backend


class ContentValidationTests(RedisBackendMixin, contract.ContentValidationTests):
    pass


class QueueTests(RedisBackendMixin, contract.QueueTests):
    def test_local_only(self):
        self.assertFalse(RedisChannelBackend.local_only)

    def test_only_response_channels_in_an_inbox_pause(self):
        backend = self.make_backend()
        for name in ("http.request", "!named", new_name("http.request.body")):
            with self.subTest(name=name), self.assertRaisesMessage(ValueError, "pauses only"):
                backend.pause_channel(name)

    def test_a_forked_child_makes_its_own_connections(self):
        # A preloading WSGI server forks after the parent has used the
        # backend; parent and child must not read each other's replies on
        # one socket.
        backend = self.make_backend()
        backend.send("test.fork", {"n": 1})
        parent_shards = backend.shards
        child = os.fork()
        if child == 0:
            status = 1
            try:
                fresh = all(a is not b for a, b in zip(backend.shards, parent_shards, strict=True))
                backend.send("test.fork", {"n": 2})
                status = 0 if fresh else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(child, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertIs(backend.shards, parent_shards)
        # (In any order: on three shards the two may be on different ones.)
        self.assertCountEqual([backend.receive_many(["test.fork"])[1] for _ in range(2)],
                              [{"n": 1}, {"n": 2}])


class BlockingReceiveTests(RedisBackendMixin, contract.BlockingReceiveTests):
    pass


class GroupTests(RedisBackendMixin, contract.GroupTests):
    pass


class LockTests(RedisBackendMixin, contract.LockTests):
    pass


class ThreadSafetyTests(RedisBackendMixin, contract.ThreadSafetyTests):
    pass


class ThreeShardMixin(RedisBackendMixin):
    """On three shards a normal channel is a list on each, in order and
    holding up to CAPACITY messages on each (docs/scaling.rst), so the
    contract tests of one list's order and capacity do not apply; their
    three-shard rules are tested in test_redis_rules."""

    shards = 3
    one_list_tests = {
        "test_capacity_raises_channel_full_at_once", "test_expired_messages_free_capacity",
        "test_expired_messages_behind_a_requeued_one_free_capacity",
        "test_channel_capacity_globs", "test_send_many_reports_full_channels_and_sends_the_rest",
        "test_requeue_puts_message_at_head_ignoring_capacity", "test_fifo_per_channel",
        "test_send_many_keeps_each_channels_order_and_capacity",
        "test_send_skips_full_members",
    }

    def setUp(self):
        if self._testMethodName in self.one_list_tests:
            self.skipTest("a normal channel is one list per shard")
        super().setUp()


class ThreeShardQueueTests(ThreeShardMixin, QueueTests):
    pass


class ThreeShardBlockingReceiveTests(ThreeShardMixin, BlockingReceiveTests):
    pass


class ThreeShardGroupTests(ThreeShardMixin, GroupTests):
    pass


class ThreeShardLockTests(ThreeShardMixin, LockTests):
    pass


class ThreeShardThreadSafetyTests(ThreeShardMixin, ThreadSafetyTests):
    pass


class BackendSettingsTests(SimpleTestCase):
    def test_built_from_channel_backends(self):
        backend = redis_backend(shared_servers(1), capacity=7, expiry=5, group_expiry=9,
                                channel_capacity={"x": 1})
        self.addCleanup(backend.close)
        self.assertIsInstance(backend, RedisChannelBackend)
        self.assertEqual((backend.capacity, backend.expiry, backend.group_expiry),
                         (7, 5, 9))
        self.assertEqual(backend.capacity_for("x"), 1)
        self.assertEqual([a.label for a in backend.addresses],
                         [f"127.0.0.1:{shared_servers(1)[0].port}"])
