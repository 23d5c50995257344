"""WebSocket pings (PING_INTERVAL, PING_TIMEOUT): one sweep per process,
driven here by a ``task.Clock``.

First ``PingSweep`` alone, with stand-in sockets that answer or not; then
a real server on the test reactor with its ping ticks on a Clock, real
sockets, real worker threads: the frames on the wire, a dead peer dropped
with 1006, a talking or answering client left alone, and a ping that waits
behind the bytes a slow reader has not taken."""

import collections
import itertools
import socket

import websocket
from django.test import SimpleTestCase
from twisted.internet import reactor
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread

from channels.backends.memory import InMemoryChannelBackend
from channels.interfaces.config import ServerConfig
from channels.interfaces.keepalive import MAX_SLOTS, PING_FRAME, PingSweep
from channels.interfaces.server import ChannelServer
from channels.interfaces.threaded import ServerHandle, ensure_reactor
from tests import interface_consumers
from tests.interface_consumers import seen, seen_lock
from tests.support.interface_server import ROUTING, handshake
from tests.support.worker_threads import wait_for, worker_threads


class Peer:
    """A socket as the sweep sees it: it answers each ping before the next
    tick while ``alive``, and cannot be heard while not ``read``."""

    def __init__(self, sweep, alive=True):
        self.sweep, self.alive, self.read = sweep, alive, True
        self.heard = 0
        self.transport = object()
        self.pings: list[tuple[int, bool]] = []  # (tick, direct)
        self.dropped_at = None

    def ping(self, direct):
        self.pings.append((self.sweep.now, direct))
        if self.alive:
            self.heard = self.sweep.now

    def ping_timed_out(self):
        if not self.read:
            return False
        self.dropped_at = self.sweep.now
        self.sweep.discard(self)  # as the socket's onClose does
        return True


def seconds(clock, count):
    """``count`` one-second ticks, one at a time."""
    for _ in range(count):
        clock.advance(1)


class PingSweepTests(SimpleTestCase):
    def sweep(self, interval, timeout, writers=None):
        clock = Clock()
        sweep = PingSweep(clock, interval, timeout, writers, tick=1)
        sweep.start()
        self.addCleanup(sweep.stop)
        return clock, sweep

    def test_answering_sockets_pinged_once_per_interval_spread_evenly(self):
        clock, sweep = self.sweep(10, 5)
        peers = [Peer(sweep) for _ in range(100)]
        for peer in peers:
            sweep.add(peer)
        seconds(clock, 40)
        per_tick = collections.Counter(tick for peer in peers for tick, _ in peer.pings)
        # 100 sockets opened at once, over 10 one-second ticks: 10 a tick.
        self.assertEqual(set(per_tick.values()), {10})
        self.assertEqual({len(peer.pings) for peer in peers}, {4})
        self.assertEqual({peer.dropped_at for peer in peers}, {None})

    def test_silent_peer_dropped_interval_plus_timeout_after_its_last_word(self):
        clock, sweep = self.sweep(20, 30)
        peer = Peer(sweep)
        sweep.add(peer)
        seconds(clock, 45)
        peer.alive = False
        last_word = peer.heard
        seconds(clock, 100)
        self.assertEqual(peer.dropped_at - last_word, 20 + 30)
        self.assertNotIn(peer, sweep.due)

    def test_peer_that_talks_is_never_pinged(self):
        clock, sweep = self.sweep(10, 5)
        talker, quiet = Peer(sweep), Peer(sweep)
        sweep.add(talker)
        sweep.add(quiet)
        for _ in range(60):
            clock.advance(1)
            if sweep.now % 9 == 0:
                talker.heard = sweep.now  # a message from it
        self.assertEqual(len(talker.pings), 1)  # the first, before it spoke
        self.assertEqual(len(quiet.pings), 6)

    def test_timeout_zero_pings_without_dropping(self):
        clock, sweep = self.sweep(5, 0)
        peer = Peer(sweep, alive=False)
        sweep.add(peer)
        seconds(clock, 100)
        self.assertIsNone(peer.dropped_at)
        self.assertEqual(len(peer.pings), 20)

    def test_peer_not_read_is_not_dropped(self):
        clock, sweep = self.sweep(5, 5)
        peer = Peer(sweep, alive=False)
        peer.read = False  # the server stopped reading it: no pong can be heard
        sweep.add(peer)
        seconds(clock, 60)
        self.assertIsNone(peer.dropped_at)
        peer.read = True
        pinged = len(peer.pings)
        seconds(clock, 10)
        self.assertEqual(len(peer.pings), pinged + 1)
        self.assertIsNotNone(peer.dropped_at)

    def test_held_up_reactor_looks_at_sockets_late_never_early(self):
        clock, sweep = self.sweep(10, 5)
        peers = [Peer(sweep) for _ in range(30)]
        dead = Peer(sweep, alive=False)
        for peer in [*peers, dead]:
            sweep.add(peer)
        clock.advance(1000)  # one call, for 1000 ticks
        self.assertEqual(sweep.now, 1000)
        self.assertTrue(all(peer.pings for peer in peers))
        # Its pong might wait unread: not dropped until the next tick.
        self.assertIsNone(dead.dropped_at)
        clock.advance(1)
        self.assertEqual(dead.dropped_at, 1001)
        before = [len(peer.pings) for peer in peers]
        seconds(clock, 10)
        self.assertEqual([len(peer.pings) - count for peer, count in zip(peers, before,
                                                                           strict=True)],
                         [1] * 30)
        for peer in peers:
            ticks = [tick for tick, _ in peer.pings]
            self.assertTrue(all(b - a >= 10 for a, b in itertools.pairwise(ticks)), ticks)
        self.assertEqual({peer.dropped_at for peer in peers}, {None})

    def test_closed_socket_is_forgotten(self):
        clock, sweep = self.sweep(5, 5)
        peer = Peer(sweep)
        sweep.add(peer)
        sweep.discard(peer)
        sweep.discard(peer)
        seconds(clock, 20)
        self.assertEqual(peer.pings, [])
        self.assertEqual((sweep.due, sweep.pinged), ({}, {}))

    def test_ping_written_directly_only_when_nothing_waits_in_twisted(self):
        writing = set()
        clock, sweep = self.sweep(5, 5, writers=lambda: list(writing))
        waiting, idle = Peer(sweep), Peer(sweep)
        writing.add(waiting.transport)
        sweep.add(waiting)
        sweep.add(idle)
        seconds(clock, 5)
        self.assertEqual([direct for _, direct in waiting.pings], [False])
        self.assertEqual([direct for _, direct in idle.pings], [True])

    def test_long_interval_takes_longer_ticks_not_more_slots(self):
        sweep = PingSweep(Clock(), 86400, 30)
        self.assertLessEqual(len(sweep.slots), MAX_SLOTS + 1)
        self.assertEqual(sweep.interval * sweep.tick, 86400)
        self.assertEqual(sweep.timeout, 1)  # 30 s rounds to one tick of 84 s

    def test_interval_zero_is_no_pings(self):
        clock = Clock()
        sweep = PingSweep(clock, 0, 30)
        sweep.start()
        sweep.add(Peer(sweep))
        self.assertFalse(sweep.loop.running)
        self.assertEqual(sweep.due, {})
        self.assertEqual(clock.getDelayedCalls(), [])


def on_reactor(function, *args):
    return blockingCallFromThread(reactor, function, *args)


def read_frame(sock):
    """(opcode, payload) of the next frame from the server (unmasked)."""
    def exactly(count):
        data = b""
        while len(data) < count:
            chunk = sock.recv(count - len(data))
            if not chunk:
                raise ConnectionError("closed by the server")
            data += chunk
        return data

    first, second = exactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(exactly(2), "big")
    elif length == 127:
        length = int.from_bytes(exactly(8), "big")
    return first & 0x0F, exactly(length)


def masked(opcode, payload):
    assert len(payload) < 126
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class ServerPingTests(SimpleTestCase):
    """PING_INTERVAL 2 s, PING_TIMEOUT 3 s, on a Clock: ticks of 0.25 s."""

    INTERVAL, TIMEOUT = 2, 3

    def setUp(self):
        backend = InMemoryChannelBackend(routing=ROUTING)
        for values in interface_consumers.seen.values():
            values.clear()
        workers = worker_threads(backend, backend.registry.all_channel_names(), 2)
        workers.__enter__()
        self.addCleanup(workers.__exit__, None, None, None)
        config = ServerConfig.from_settings(ping_interval=self.INTERVAL,
                                            ping_timeout=self.TIMEOUT)
        self.clock = Clock()
        ensure_reactor()

        def listen():
            server = ChannelServer(backend, reactor, config, clock=self.clock)
            return server, server.listen_tcp(0, "127.0.0.1").getHost().port

        server, port = on_reactor(listen)
        self.server = server
        self.handle = ServerHandle(server, "127.0.0.1", port)
        self.addCleanup(self.handle.stop)

    def advance(self, seconds):
        """Move the ping clock in its ticks, each on the reactor."""
        for _ in range(round(seconds / 0.25)):
            on_reactor(self.clock.advance, 0.25)

    def raw_socket(self, path=b"/echo/", receive_buffer=None):
        sock = socket.socket()
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", self.handle.port))
        self.addCleanup(sock.close)
        sock.sendall(handshake(path=path))
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101"), head)
        wait_for(lambda: len(self.server.pings.due) == 1, timeout=30)
        return sock

    def test_silent_peer_gets_two_byte_pings_and_is_dropped_with_1006(self):
        sock = self.raw_socket()
        (protocol,) = self.server.websockets
        pings = self.server.pings
        while protocol not in pings.pinged:
            self.advance(0.25)
        self.assertEqual(sock.recv(16), PING_FRAME)
        # No pong: dropped TIMEOUT after the ping, not before.
        self.advance(self.TIMEOUT - 0.25)
        self.assertIn(protocol, pings.due)
        self.advance(0.25)
        self.assertNotIn(protocol, pings.due)
        try:
            self.assertEqual(sock.recv(16), b"")
        except ConnectionResetError:
            pass  # dropped, not closed with a handshake
        wait_for(lambda: seen["disconnect"], timeout=30)
        with seen_lock:
            self.assertEqual(seen["disconnect"][0]["code"], 1006)
        self.assertEqual(self.server.pings.due, {})

    def test_client_answering_pings_stays_open(self):
        ws = websocket.create_connection(f"ws://127.0.0.1:{self.handle.port}/echo/", timeout=10)
        self.addCleanup(ws.close)
        wait_for(lambda: len(self.server.websockets) == 1, timeout=30)
        (protocol,) = self.server.websockets
        for _ in range(10):
            self.advance(self.INTERVAL)
            opcode, _ = ws.recv_data(control_frame=True)  # and answers it
            self.assertEqual(opcode, websocket.ABNF.OPCODE_PING)
            wait_for(lambda: protocol.heard == self.server.pings.now, timeout=30)
        ws.send("still here")
        self.assertEqual(ws.recv(), "still here")

    def test_client_that_talks_is_not_pinged(self):
        sock = self.raw_socket()
        for number in range(12):
            sock.sendall(masked(1, str(number).encode()))
            # The echo comes once the message was heard; a ping would have
            # come before it.
            self.assertEqual(read_frame(sock), (1, str(number).encode()))
            self.advance(1)

    def test_ping_waits_behind_what_a_slow_reader_has_not_taken(self):
        sock = self.raw_socket(b"/flood/", receive_buffer=4096)
        (protocol,) = self.server.websockets
        # Small kernel buffers on both sides, so that most waits in Twisted.
        on_reactor(protocol.transport.getHandle().setsockopt, socket.SOL_SOCKET,
                   socket.SO_SNDBUF, 8192)
        sock.sendall(masked(1, b"6"))  # six binary messages of 500 KB
        wait_for(lambda: protocol.transport in on_reactor(reactor.getWriters), timeout=30)
        self.advance(self.INTERVAL)
        frames = [read_frame(sock) for _ in range(7)]
        self.assertEqual(sorted(opcode for opcode, _ in frames), [2] * 6 + [9])
        self.assertEqual({len(payload) for opcode, payload in frames if opcode == 2},
                         {500_000})
