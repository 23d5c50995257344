"""Batches on Redis: one script call per shard for a batch sent, and a busy
receiver taking up to its limit in one call."""

import threading

from channels.names import new_name, process_wildcard
from tests.support.redis_tests import RedisTestCase, command_calls, evalsha_calls


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
