"""Expiry on Redis: no expired message is delivered, and every key goes
once its contents have."""

import threading
import time

from channels.names import new_name, process_wildcard
from tests.support.redis_tests import RedisTestCase, keys_of


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
