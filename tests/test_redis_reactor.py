"""The Redis backend's layer client (``RedisChannelBackend.layer_client``)
under the interface server's bridge, against real Redis servers: normal
channels retried on other shards, what fails alone, pause order on a fresh
server, a failed pause retried, and what a stopped reader puts back. The
servers' end-to-end tests (test_interface_redis.py) run through it as well."""

import queue

from django.test import SimpleTestCase
from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from channels.backends.redis.backend import PAUSED
from channels.backends.redis.sharding import inbox_of
from channels.exceptions import ChannelFull, InvalidMessage
from channels.interfaces.layer import LayerBridge
from channels.interfaces.threaded import ensure_reactor
from channels.names import new_name, process_wildcard
from tests.support.redis_servers import RedisServer, redis_backend, shared_servers
from tests.support.worker_threads import wait_for


class ReactorBridgeTests(SimpleTestCase):
    def bridge(self, backend) -> LayerBridge:
        ensure_reactor()
        client = backend.layer_client(reactor)
        client.poll_timeout = 0.2
        bridge = LayerBridge(client)
        blockingCallFromThread(reactor, bridge.start)
        self.addCleanup(blockingCallFromThread, reactor, bridge.stop)
        return bridge

    def backend(self, servers, **options):
        backend = redis_backend(servers, **options)
        self.addCleanup(backend.flush)
        self.addCleanup(backend.close)
        return backend

    def test_normal_channel_refused_by_the_first_shard_goes_to_the_others(self):
        # Room for two per shard: the first shard in turn takes two of four,
        # the client gives the rest to the other.
        backend = self.backend(shared_servers(2), channel_capacity={"q": 2})
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_all():
            for n in range(4):
                bridge.send("q", {"n": n}, lambda exc, n=n: heard.put((n, exc)),
                            lambda n=n: heard.put((n, "sent")))

        blockingCallFromThread(reactor, send_all)
        self.assertEqual(sorted(heard.get(timeout=10) for _ in range(4)),
                         [(n, "sent") for n in range(4)])
        received = backend.receive_batch(["q"], 10, 0) + backend.receive_batch(["q"], 10, 0)
        self.assertEqual(sorted(content["n"] for _, content in received), [0, 1, 2, 3])
        blockingCallFromThread(reactor, send_all)
        self.assertEqual(sorted((n, type(what)) for n, what in
                                (heard.get(timeout=10) for _ in range(4))),
                         [(0, str), (1, str), (2, str), (3, str)])
        blockingCallFromThread(reactor, lambda: bridge.send(
            "q", {"n": 4}, lambda exc: heard.put(exc)))
        self.assertIsInstance(heard.get(timeout=10), ChannelFull)  # both shards full

    def test_a_message_that_cannot_travel_fails_alone(self):
        backend = self.backend(shared_servers(1))
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_both():
            bridge.send("q", {"bad": object()}, heard.put)
            bridge.send("q", {"good": 1}, heard.put, lambda: heard.put("sent"))

        blockingCallFromThread(reactor, send_both)
        self.assertEqual({type(heard.get(timeout=10)) for _ in range(2)},
                         {InvalidMessage, str})
        self.assertEqual(backend.receive_batch(["q"], 10, 0), [("q", {"good": 1})])

    def test_replies_reach_their_listener(self):
        backend = self.backend(shared_servers(1))
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()
        channel = blockingCallFromThread(reactor, bridge.new_reply_channel,
                                         "!websocket.send", heard.put)
        for n in range(3):
            backend.send(channel, {"n": n})
        self.assertEqual([heard.get(timeout=10) for _ in range(3)],
                         [{"n": 0}, {"n": 1}, {"n": 2}])

    def test_pause_then_resume_on_a_fresh_server_leave_the_channel_open(self):
        # Pipelined before the server has any script: the connection loads
        # them all first, so the resume cannot overtake the pause.
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        backend = self.backend([server])
        bridge = self.bridge(backend)
        channel = new_name("!http.response")

        def pause_and_resume():
            bridge.pause(channel, True)
            bridge.pause(channel, False)

        blockingCallFromThread(reactor, pause_and_resume)
        # A later change on this one server is answered after both.
        blockingCallFromThread(reactor, bridge.client.set_paused,
                               new_name("!http.response"), False)
        backend.send(channel, {"n": 1})  # not paused

    def test_a_pause_that_fails_is_retried(self):
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        backend = self.backend([server])
        bridge = self.bridge(backend)
        bridge.change_retry, bridge.change_attempts = 0.05, 100
        channel = new_name("!http.response")
        server.stop()
        with self.assertLogs("channels", "WARNING") as logs:
            blockingCallFromThread(reactor, bridge.pause, channel, True)
            wait_for(lambda: any("Could not pause" in line for line in logs.output))
            server.start()  # empty: only the retry can pause the channel now
            client = server.client()
            self.addCleanup(client.close)
            counts = backend._inbox_keys(inbox_of(channel))[1]
            wait_for(lambda: int(client.hget(counts, channel) or 0) >= PAUSED, timeout=10)
        with self.assertRaises(ChannelFull):
            backend.send(channel, {"n": 1})

    def test_a_stopped_reader_puts_back_what_its_last_pop_takes(self):
        server = RedisServer().start()
        self.addCleanup(server.cleanup)
        backend = self.backend([server])
        bridge = self.bridge(backend)
        channel = blockingCallFromThread(reactor, bridge.new_reply_channel,
                                         "!websocket.send", lambda content: None)
        client = server.client()
        self.addCleanup(client.close)
        wait_for(lambda: any(c["cmd"] == "blmpop" for c in client.client_list()))
        blockingCallFromThread(reactor, lambda: bridge.stop() and None)  # not waiting
        backend.send(channel, {"n": 1})  # the reader's pop is still waiting
        self.assertEqual(backend.receive_batch([process_wildcard("!websocket.send")], 10, 2),
                         [(channel, {"n": 1})])


class ReactorClientChoiceTests(SimpleTestCase):
    def test_tls_shards_keep_the_threads(self):
        self.assertIsNone(redis_backend([], hosts=["rediss://127.0.0.1:6390"])
                          .reactor_client(reactor))
        for hosts in (["redis://127.0.0.1:6390/1"], ["unix:///tmp/redis.sock"]):
            self.assertIsNotNone(redis_backend([], hosts=hosts).reactor_client(reactor))
