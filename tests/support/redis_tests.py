"""Helpers of the Redis backend's tests: a test case on shared servers, and
looks inside the servers (keys, command counts, which name lives where)."""

import collections
import os

from django.test import SimpleTestCase

from tests.support.redis_servers import redis_backend, shared_servers

# The repository's root, for tests that run a child process or read docs.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def keys_of(backend, server, kind=""):
    """The backend's keys on one server (``kind``: "c:", "i:", ...)."""
    client = server.client()
    try:
        return sorted(key.decode() for key in client.scan_iter(f"{backend.prefix}{kind}*"))
    finally:
        client.close()


def bound_members(backend, servers):
    """Group members bound to their interface process, counted in Redis
    itself (the ``gm:`` sorted sets on every shard)."""
    count = 0
    for server in servers:
        client = server.client()
        try:
            count += sum(client.zcard(key) for key in keys_of(backend, server, "gm:"))
        finally:
            client.close()
    return count


def all_commands(servers):
    """Commands that ``servers`` ran so far, those inside scripts included,
    by name (``evalsha``, ``rpush``...), INFO left out."""
    totals = collections.Counter()
    for server in servers:
        client = server.client()
        try:
            stats = client.info("commandstats")
        finally:
            client.close()
        for name, value in stats.items():
            if name != "cmdstat_info":
                totals[name.removeprefix("cmdstat_")] += value["calls"]
    return totals


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


def on_shard(backend, index, prefix="!fixed"):
    """A response channel name whose home is shard ``index``."""
    for n in range(1000):
        name = f"{prefix}.{n}"
        if backend.placement.home(name)[0] == index:
            return name
    raise AssertionError("no such name")


class RedisTestCase(SimpleTestCase):
    """On ``shards`` shared servers; ``make_backend`` gives a backend with
    its own PREFIX, flushed and closed after the test."""

    shards = 3

    def make_backend(self, shards=None, **options):
        backend = redis_backend(self.servers[:shards], **options)
        self.addCleanup(backend.close)
        self.addCleanup(backend.flush)
        return backend

    def setUp(self):
        self.servers = shared_servers(self.shards)
