"""Rule 1 of the Redis backend's placement: a process's response channels
share an inbox, with a capacity per channel."""

import threading

from channels.exceptions import ChannelFull
from channels.names import new_name, new_token, process_wildcard
from tests.support.redis_tests import RedisTestCase, keys_of


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


class ReplyTokenTests(RedisTestCase):
    """The token an interface server moves to when its inbox cannot be
    read (docs/scaling.rst, "When the inbox's shard fails")."""

    def test_a_new_token_hashes_to_a_live_shard_other_than_the_lost_ones(self):
        backend = self.make_backend()
        placement, shards = backend.placement, backend.shards
        lost = next(token for token in (new_token() for _ in range(1000))
                    if placement.inbox_shard(token) == 0)
        shards[1].failed(ConnectionError("test"))
        self.addCleanup(shards[1].recovered)
        tokens = [backend.reply_token(lost) for _ in range(50)]
        self.assertEqual({placement.inbox_shard(token) for token in tokens}, {2})
        self.assertEqual(len(set(tokens)), 50)
        # Workers derive the shard from a name alone: a reply reaches it.
        name = new_name("!http.response", tokens[0])
        backend.send(name, {"n": 1})
        self.assertEqual(backend.receive_batch([process_wildcard("!http.response", tokens[0])],
                                               timeout=1), [(name, {"n": 1})])

    def test_none_when_no_other_shard_is_up(self):
        backend = self.make_backend()
        lost = new_token()
        for shard in backend.shards:
            if shard.index != backend.placement.inbox_shard(lost):
                shard.failed(ConnectionError("test"))
                self.addCleanup(shard.recovered)
        self.assertIsNone(backend.reply_token(lost))
