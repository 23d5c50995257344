"""The Redis backend's layer client (channels/backends/redis/reactor.py)
against real Redis servers, through its contract
(``channels.backends.layer_client``): what a batch reports, retries on the
other shards, pause order on a fresh server, reads, their pace and retries
(on a ``task.Clock``), and what a stopped reader puts back. Then the same
client under the interface server's bridge. The servers' end-to-end tests
(test_interface_redis.py) run through it as well."""

import os
import queue
import signal

from django.test import SimpleTestCase
from twisted.internet import reactor, task
from twisted.internet.threads import blockingCallFromThread

from channels.backends.encoding import decode, encode
from channels.backends.redis import scripts
from channels.backends.redis.layout import PAUSED
from channels.backends.redis.reactor import RECEIVE_RETRY, RedisReactorClient
from channels.backends.redis.shard import POP_MARGIN
from channels.backends.redis.sharding import inbox_of
from channels.exceptions import ChannelBackendUnavailable, ChannelFull, InvalidMessage
from channels.interfaces.layer import LayerBridge
from channels.interfaces.threaded import ensure_reactor
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import RedisServer, redis_backend, shared_servers
from tests.support.redis_tests import on_shard
from tests.support.worker_threads import wait_for

WILDCARD = process_wildcard("!websocket.send")


def in_reactor(function, *args):
    """Call ``function`` on the reactor thread; its result, once a Deferred
    it returns has fired."""
    return blockingCallFromThread(reactor, function, *args)


class ClientTestCase(SimpleTestCase):
    def setUp(self):
        ensure_reactor()

    def backend(self, servers, **options):
        backend = redis_backend(servers, **options)
        if servers and servers[0] in shared_servers(len(servers)):
            self.addCleanup(backend.flush)
        self.addCleanup(backend.close)
        return backend

    def own_servers(self, count):
        """Servers of this test alone, which it may stop."""
        servers = [RedisServer().start() for _ in range(count)]
        for server in servers:
            self.addCleanup(server.cleanup)
        return servers

    def layer_client(self, backend, poll_timeout=0.2, clock=None):
        client = backend.layer_client(reactor)
        self.assertIsInstance(client, RedisReactorClient)
        client.poll_timeout = poll_timeout
        if clock is not None:
            client.clock = clock
        self.addCleanup(in_reactor, client.stop)
        return client

    def reading(self, client, channels=(WILDCARD,), limit=500):
        """Start ``client`` reading; the queue its batches arrive on."""
        batches = queue.SimpleQueue()
        in_reactor(client.receive, list(channels), limit, batches.put)
        return batches

    @staticmethod
    def send(client, messages):
        return in_reactor(client.send_batch, [(c, encode(m)) for c, m in messages])


class SendTests(ClientTestCase):
    def test_normal_channel_refused_by_the_first_shard_goes_to_the_others(self):
        # Room for two per shard: the shard in turn takes two of four, the
        # client gives the other two to the other shard itself.
        backend = self.backend(shared_servers(2), channel_capacity={"q": 2})
        client = self.layer_client(backend)
        self.assertEqual(self.send(client, [("q", {"n": n}) for n in range(4)]), [])
        received = backend.receive_batch(["q"], 10, 0) + backend.receive_batch(["q"], 10, 0)
        self.assertEqual(sorted(content["n"] for _, content in received), [0, 1, 2, 3])
        self.assertEqual(self.send(client, [("q", {"n": n}) for n in range(4)]), [])
        failures = self.send(client, [("q", {"n": 4}), ("q", {"n": 5})])
        self.assertEqual([(position, type(exc)) for position, exc in failures],
                         [(0, ChannelFull), (1, ChannelFull)])  # both shards full
        self.assertIn("'q' is full", str(failures[0][1]))

    def test_a_full_response_channel_fails_alone(self):
        backend = self.backend(shared_servers(2), channel_capacity={"!*": 1})
        client = self.layer_client(backend)
        full, free = new_name("!websocket.send"), new_name("!websocket.send")
        failures = self.send(client, [(full, {"n": 1}), (free, {"n": 1}), (full, {"n": 2}),
                                      ("q", {"n": 1})])
        self.assertEqual([(position, type(exc)) for position, exc in failures],
                         [(2, ChannelFull)])
        self.assertEqual(sorted(backend.receive_batch([WILDCARD], 10, 0)),
                         sorted([(full, {"n": 1}), (free, {"n": 1})]))

    def test_messages_on_a_dead_shard_are_reported_and_the_rest_sent(self):
        servers = self.own_servers(3)
        backend = self.backend(servers, capacity=1000)
        client = self.layer_client(backend)
        self.assertEqual(self.send(client, [("q", {"n": -1})]), [])
        dead, alive = on_shard(backend, 1), on_shard(backend, 2)
        servers[1].stop()
        # Whichever shard is next in turn, the normal messages go around it.
        for n in range(4):
            failures = self.send(client, [(alive, {"n": n}), (dead, {"n": n}),
                                          ("q", {"n": n}), ("q", {"n": n + 100})])
            self.assertEqual([(position, type(exc)) for position, exc in failures],
                             [(1, ChannelBackendUnavailable)])
        self.assertEqual([m["n"] for _, m in backend.receive_batch([alive], 10, 0)],
                         [0, 1, 2, 3])
        got = set()
        while batch := backend.receive_batch(["q"], 100, 0.2):
            got.update(m["n"] for _, m in batch)
        self.assertTrue(set(range(4)) | set(range(100, 104)) <= got, got)

    def test_every_shard_down(self):
        servers = self.own_servers(2)
        backend = self.backend(servers)
        client = self.layer_client(backend)
        for server in servers:
            server.stop()
        failures = self.send(client, [("q", {}), (on_shard(backend, 0), {})])
        self.assertEqual([(position, type(exc)) for position, exc in failures],
                         [(0, ChannelBackendUnavailable), (1, ChannelBackendUnavailable)])


class PauseTests(ClientTestCase):
    def test_pause_then_resume_on_a_fresh_server_leave_the_channel_open(self):
        # Pipelined before the server has any script: the connection loads
        # them all first, so the resume cannot overtake the pause.
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        client = self.layer_client(backend)
        channel = new_name("!http.response")
        done = queue.SimpleQueue()

        def pause_and_resume():
            client.set_paused(channel, True).addBoth(done.put)
            client.set_paused(channel, False).addBoth(done.put)

        in_reactor(pause_and_resume)
        self.assertEqual([done.get(timeout=10), done.get(timeout=10)], [None, None])
        redis_client = server.client()
        self.addCleanup(redis_client.close)
        shas = [sha for sha, _ in scripts.LOADED.values()]
        self.assertTrue(all(redis_client.script_exists(*shas)))
        backend.send(channel, {"n": 1})  # not paused

    def test_a_pause_that_fails_fails_its_deferred_and_can_be_tried_again(self):
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        client = self.layer_client(backend)
        channel = new_name("!http.response")
        server.stop()
        with self.assertRaises(ChannelBackendUnavailable):
            in_reactor(client.set_paused, channel, True)
        server.start()  # empty: only a new try can pause the channel now
        wait_for(lambda: backend.shards[0].available)
        in_reactor(client.set_paused, channel, True)
        redis_client = server.client()
        self.addCleanup(redis_client.close)
        counts = backend.layout.inbox_keys(inbox_of(channel))[1]
        self.assertGreaterEqual(int(redis_client.hget(counts, channel)), PAUSED)
        with self.assertRaises(ChannelFull):
            backend.send(channel, {"n": 1})

    def test_only_response_channels_in_an_inbox_pause(self):
        client = self.layer_client(self.backend(shared_servers(1)))
        with self.assertRaisesMessage(ValueError, "pauses only response channels"):
            in_reactor(client.set_paused, "!fixed", True)


class ReceiveTests(ClientTestCase):
    def test_replies_and_group_messages_within_the_limit(self):
        backend = self.backend(shared_servers(2))
        client = self.layer_client(backend)
        members = [new_name("!websocket.send") for _ in range(5)]
        for member in members:
            backend.group_add("room", member)
        batches = self.reading(client, limit=2)
        backend.send(members[0], {"n": 0})
        backend.send_group("room", {"n": 1})
        got = []
        while len(got) < 6:
            batch = batches.get(timeout=10)
            self.assertLessEqual(len(batch), 2)
            got += [(channel, decode(data)) for channel, data in batch]
        self.assertEqual(got[0], (members[0], {"n": 0}))
        self.assertEqual(sorted(got[1:]), sorted((m, {"n": 1}) for m in members))

    def test_a_read_waits_its_pace_after_a_small_batch(self):
        backend = self.backend(shared_servers(1))
        clock = task.Clock()
        client = self.layer_client(backend, clock=clock)
        channel = new_name("!websocket.send")
        backend.send_many([(channel, {"n": n}) for n in range(3)])
        batches = self.reading(client)
        self.assertEqual(len(batches.get(timeout=10)), 3)
        calls = in_reactor(clock.getDelayedCalls)
        self.assertEqual([call.getTime() for call in calls], [client.coalesce_wait])
        backend.send(channel, {"n": 3})
        in_reactor(clock.advance, client.coalesce_wait)
        self.assertEqual(len(batches.get(timeout=10)), 1)
        calls = in_reactor(clock.getDelayedCalls)  # a lone message: no wait
        self.assertEqual([call.getTime() for call in calls], [clock.seconds()])

    def test_a_failed_read_is_tried_again_after_receive_retry(self):
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        clock = task.Clock()
        client = self.layer_client(backend, clock=clock)
        channel = new_name("!websocket.send")
        server.stop()
        with self.assertLogs("channels.backends.redis", "ERROR"):  # the outage, once
            batches = self.reading(client)
            wait_for(lambda: in_reactor(clock.getDelayedCalls))
        (retry,) = in_reactor(clock.getDelayedCalls)
        self.assertEqual(retry.getTime(), RECEIVE_RETRY)
        server.start()
        wait_for(lambda: backend.shards[0].available)
        backend.send(channel, {"n": 1})
        in_reactor(clock.advance, RECEIVE_RETRY / 2)
        self.assertTrue(batches.empty())
        in_reactor(clock.advance, RECEIVE_RETRY / 2)
        self.assertEqual(batches.get(timeout=10), [(channel, encode({"n": 1}))])

    def test_stop_while_a_retry_waits_ends_at_once(self):
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        clock = task.Clock()
        client = self.layer_client(backend, clock=clock)
        server.stop()
        with self.assertLogs("channels.backends.redis", "ERROR"):
            self.reading(client)
            wait_for(lambda: in_reactor(clock.getDelayedCalls))
        self.assertIsNone(in_reactor(client.stop))
        self.assertEqual(in_reactor(clock.getDelayedCalls), [])

    def blocked(self, server, client):
        """Start ``client`` reading and wait until its pop waits on ``server``."""
        self.reading(client)
        redis_client = server.client()
        self.addCleanup(redis_client.close)
        wait_for(lambda: any(c["cmd"] == "blmpop" for c in redis_client.client_list()))
        return redis_client

    def test_a_stopped_reader_puts_back_what_its_last_pop_takes(self):
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        client = self.layer_client(backend, poll_timeout=5)
        channel = new_name("!websocket.send")
        redis_client = self.blocked(server, client)
        stopped = queue.SimpleQueue()

        def send_then_stop():
            # The waiting pop takes it at once; its answer reaches the
            # reactor only after this, when the client is stopping.
            backend.send(channel, {"n": 1})
            client.stop().addBoth(stopped.put)

        in_reactor(send_then_stop)
        self.assertIsNone(stopped.get(timeout=10))
        # Back at the head, and counted, before stop() fired.
        self.assertEqual(backend.receive_batch([WILDCARD], 10, 0), [(channel, {"n": 1})])
        self.assertEqual(redis_client.hlen(backend.layout.inbox_keys(WILDCARD)[1]), 0)

    def test_stop_ends_a_waiting_pop_at_once(self):
        # A shutdown does not wait out poll_timeout (CLIENT UNBLOCK).
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        client = self.layer_client(backend, poll_timeout=60)
        redis_client = self.blocked(server, client)
        stopped = queue.SimpleQueue()

        def stop():
            client.stop().addBoth(stopped.put)

        in_reactor(stop)
        self.assertIsNone(stopped.get(timeout=30))
        wait_for(lambda: not any(c["cmd"] == "blmpop" for c in redis_client.client_list()))

    def test_connections_closed_on_purpose_are_no_outage(self):
        # Closed with a pop under way, as the reactor cuts what is left
        # when a process exits: nothing is logged, the shard stays up.
        (server,) = self.own_servers(1)
        backend = self.backend([server])
        client = self.layer_client(backend, poll_timeout=60)
        self.blocked(server, client)

        def close_all():
            for connection in [*client._commands.values(), *client._blocking.values()]:
                connection.close()
                connection._protocol.transport.abortConnection()

        with self.assertNoLogs("channels.backends.redis", "WARNING"):
            in_reactor(close_all)
            in_reactor(client.stop)
        self.assertFalse(backend.shards[0].down)


class SilentShardTests(ClientTestCase):
    """A server that stops answering with its connections open (SIGSTOP):
    each command's deadline runs on the client's clock."""

    def test_a_blocking_pop_unanswered_past_its_margin_fails_and_tells_lost(self):
        [server] = self.own_servers(1)
        backend = self.backend([server])
        clock = task.Clock()
        client = self.layer_client(backend, poll_timeout=30, clock=clock)
        lost = queue.SimpleQueue()
        in_reactor(client.receive, [WILDCARD], 500, lambda batch: None, lost.put)
        watcher = server.client()
        self.addCleanup(watcher.close)
        wait_for(lambda: any(entry["cmd"] == "blmpop" for entry in watcher.client_list()),
                 timeout=10)
        os.kill(server.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, server.process.pid, signal.SIGCONT)
        in_reactor(clock.advance, 30)  # the pop's own wait: not yet
        in_reactor(lambda: None)
        self.assertTrue(lost.empty())
        in_reactor(clock.advance, POP_MARGIN)
        error = lost.get(timeout=10)
        self.assertIsInstance(error, ChannelBackendUnavailable)
        self.assertIn(f"gave no answer within {30 + POP_MARGIN:g} s", str(error))
        self.assertTrue(backend.shards[0].down)

    def test_a_deadline_that_fires_late_gives_the_server_its_time_again(self):
        # This process, not the server, was stopped (a loaded machine).
        [server] = self.own_servers(1)
        backend = self.backend([server])
        clock = task.Clock()
        client = self.layer_client(backend, poll_timeout=30, clock=clock)
        lost = queue.SimpleQueue()
        in_reactor(client.receive, [WILDCARD], 500, lambda batch: None, lost.put)
        watcher = server.client()
        self.addCleanup(watcher.close)
        wait_for(lambda: any(entry["cmd"] == "blmpop" for entry in watcher.client_list()),
                 timeout=10)
        os.kill(server.process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, server.process.pid, signal.SIGCONT)
        in_reactor(clock.advance, 30 + POP_MARGIN + 1)  # one late firing
        in_reactor(lambda: None)
        self.assertTrue(lost.empty())
        self.assertFalse(backend.shards[0].down)
        in_reactor(clock.advance, 30 + POP_MARGIN)
        self.assertIsInstance(lost.get(timeout=10), ChannelBackendUnavailable)

    def test_an_answer_in_time_leaves_no_deadline_behind(self):
        backend = self.backend(shared_servers(1))
        clock = task.Clock()
        client = self.layer_client(backend, clock=clock)
        self.assertEqual(self.send(client, [("q", {"n": 1})]), [])
        self.assertEqual(in_reactor(clock.getDelayedCalls), [])


class BridgeTests(ClientTestCase):
    """The client under the interface server's bridge."""

    def bridge(self, backend) -> LayerBridge:
        bridge = LayerBridge(self.layer_client(backend))
        in_reactor(bridge.start)
        self.addCleanup(in_reactor, bridge.stop)
        return bridge

    def test_normal_channel_refused_by_the_first_shard_goes_to_the_others(self):
        backend = self.backend(shared_servers(2), channel_capacity={"q": 2})
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_all():
            for n in range(4):
                bridge.send("q", {"n": n}, lambda exc, n=n: heard.put((n, exc)),
                            lambda n=n: heard.put((n, "sent")))

        in_reactor(send_all)
        self.assertEqual(sorted(heard.get(timeout=10) for _ in range(4)),
                         [(n, "sent") for n in range(4)])
        received = backend.receive_batch(["q"], 10, 0) + backend.receive_batch(["q"], 10, 0)
        self.assertEqual(sorted(content["n"] for _, content in received), [0, 1, 2, 3])
        in_reactor(send_all)
        self.assertEqual(sorted(heard.get(timeout=10) for _ in range(4)),
                         [(n, "sent") for n in range(4)])
        in_reactor(lambda: bridge.send("q", {"n": 4}, heard.put))
        self.assertIsInstance(heard.get(timeout=10), ChannelFull)  # both shards full

    def test_a_message_that_cannot_travel_fails_alone(self):
        backend = self.backend(shared_servers(1))
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_both():
            bridge.send("q", {"bad": object()}, heard.put)
            bridge.send("q", {"good": 1}, heard.put, lambda: heard.put("sent"))

        in_reactor(send_both)
        self.assertEqual({type(heard.get(timeout=10)) for _ in range(2)},
                         {InvalidMessage, str})
        self.assertEqual(backend.receive_batch(["q"], 10, 0), [("q", {"good": 1})])

    def test_replies_reach_their_listener(self):
        backend = self.backend(shared_servers(1))
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()
        channel = in_reactor(bridge.new_reply_channel, "!websocket.send", heard.put)
        for n in range(3):
            backend.send(channel, {"n": n})
        self.assertEqual([heard.get(timeout=10) for _ in range(3)],
                         [{"n": 0}, {"n": 1}, {"n": 2}])


class ClientChoiceTests(SimpleTestCase):
    def test_tls_shards_keep_the_default(self):
        self.assertNotIsInstance(redis_backend([], hosts=["rediss://127.0.0.1:6390"])
                                 .layer_client(reactor), RedisReactorClient)
        for hosts in (["redis://127.0.0.1:6390/1"], ["unix:///tmp/redis.sock"]):
            self.assertIsInstance(redis_backend([], hosts=hosts).layer_client(reactor),
                                  RedisReactorClient)
