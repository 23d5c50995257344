"""Rule 3 of the Redis backend's placement: a normal channel is spread over
the live shards, with a capacity per shard."""

from channels.exceptions import ChannelFull
from tests.support.redis_tests import RedisTestCase


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
