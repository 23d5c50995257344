"""Bytes straight to the socket when Twisted holds none for the connection
(``channels.direct_write``), on real TCP and Unix connections
served by the process's reactor, driven from the test thread; the client
is a plain blocking socket that reads when the test says so.

What must hold: bytes arrive in the order written, none lost, however
direct and buffered writes mix (and the outbox holds some); nothing goes
direct while Twisted holds bytes, nor once the connection is closing or
aborted; TLS and other transports are written the usual way; a broken
connection is still found; and Twisted still has the attributes the rule
reads, so that an upgrade that renames them fails here."""

import os
import random
import select
import shutil
import socket
import struct
import tempfile

from django.test import SimpleTestCase
from twisted.internet import reactor, tcp
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.internet.threads import blockingCallFromThread

from channels.direct_write import direct_socket, send_now, write_now
from channels.interfaces.outbox import Outbox
from channels.interfaces.threaded import ensure_reactor
from tests.support.worker_threads import wait_for

SMALL_BUFFER = 16 * 1024
# What the rule reads of a transport: renamed by Twisted, the rule would
# write everything the usual way, and the tests below say so.
TWISTED_ATTRIBUTES = ("connected", "disconnecting", "_aborting", "_writeDisconnecting",
                      "_writeDisconnected", "TLS", "dataBuffer", "_tempDataBuffer", "socket")


def on_reactor(function, *args):
    return blockingCallFromThread(reactor, function, *args)


class Served(Protocol):
    def connectionMade(self):
        self.lost = False
        self.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
        self.factory.connections.append(self)

    def connectionLost(self, reason=None):
        self.lost = True


class DirectWriteTests(SimpleTestCase):
    family = socket.AF_INET

    def setUp(self):
        ensure_reactor()
        self.factory = Factory.forProtocol(Served)
        self.factory.connections = []
        self.port = on_reactor(self.listen)
        self.addCleanup(on_reactor, self.port.stopListening)
        self.client = socket.socket(self.family, socket.SOCK_STREAM)
        self.addCleanup(self.client.close)
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)
        self.client.settimeout(10)
        self.client.connect(self.address)
        wait_for(lambda: self.factory.connections, timeout=10)
        self.served = self.factory.connections[0]
        self.transport = self.served.transport
        self.addCleanup(on_reactor, self.transport.abortConnection)

    def listen(self):
        port = reactor.listenTCP(0, self.factory, interface="127.0.0.1")
        self.address = ("127.0.0.1", port.getHost().port)
        return port

    def receive(self, count):
        data = bytearray()
        while len(data) < count:
            chunk = self.client.recv(count - len(data))
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def receive_to_end(self):
        """Everything until the server closes (or resets) the connection."""
        data = bytearray()
        try:
            while chunk := self.client.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return bytes(data)

    def test_an_idle_connection_is_written_at_once(self):
        def write():
            self.assertIs(direct_socket(self.transport), self.transport.getHandle())
            write_now(self.transport, b"hello")
            # Neither buffered nor registered for writability.
            return self.transport in reactor.getWriters()

        self.assertFalse(on_reactor(write))
        self.assertEqual(self.receive(5), b"hello")

    def test_twisted_still_has_what_is_read(self):
        for name in TWISTED_ATTRIBUTES:
            self.assertTrue(hasattr(self.transport, name), name)
        self.assertIsInstance(self.transport.getHandle(), socket.socket)

    def test_nothing_direct_while_twisted_holds_bytes(self):
        def write():
            self.transport.write(b"first")  # buffered until the next poll
            self.assertIsNone(direct_socket(self.transport))
            write_now(self.transport, b"second")

        on_reactor(write)
        self.assertEqual(self.receive(11), b"firstsecond")
        # Once Twisted has sent its bytes, direct again.
        wait_for(lambda: on_reactor(direct_socket, self.transport) is not None)

    def test_mixed_direct_and_buffered_writes_arrive_in_order(self):
        """The client reads in bits, less than was written, so that the
        socket's buffer fills: some writes go direct, some the socket takes
        in part (the rest goes to Twisted), some queue behind Twisted's, and
        the outbox holds some while Twisted has paused it."""
        behind = []
        outbox = on_reactor(lambda: Outbox(self.transport, reactor, 16 * 1024 * 1024, 60,
                                           self.fail, behind.append))
        rng = random.Random(19)
        stream = rng.randbytes(3 * 1024 * 1024)
        paths = {"direct": 0, "twisted": 0, "held": 0}
        written = received = 0
        got = bytearray()

        def write_some(count):
            nonlocal written
            for _ in range(count):
                size = rng.choice((2, 7, 120, 1500, 9000, 40000))
                chunk = stream[written:written + size]
                if not chunk:
                    return
                if outbox.paused or outbox.held:
                    paths["held"] += 1
                elif direct_socket(self.transport) is not None:
                    paths["direct"] += 1
                else:
                    paths["twisted"] += 1
                outbox.write(chunk)
                written += len(chunk)

        while written < len(stream):
            on_reactor(write_some, rng.randint(1, 60))
            # Read some of it, rarely all.
            count = rng.randint(0, (written - received) * 3 // 4)
            got += self.receive(count)
            received += count
        got += self.receive(len(stream) - received)
        self.assertEqual(len(got), len(stream))
        self.assertTrue(got == stream, "bytes out of order, lost or repeated")
        self.assertTrue(all(paths.values()), paths)
        # Caught up: direct again.
        wait_for(lambda: on_reactor(direct_socket, self.transport) is not None)
        self.assertFalse(on_reactor(lambda: outbox.held))

    def test_nothing_direct_once_closing(self):
        def close():
            write_now(self.transport, b"before")
            self.transport.loseConnection()
            self.assertIsNone(direct_socket(self.transport))
            # What comes after goes Twisted's way, as it always did: it
            # sends it before it closes.
            write_now(self.transport, b"after")
            return list(self.transport._tempDataBuffer)

        self.assertEqual(on_reactor(close), [b"after"])
        self.assertEqual(self.receive_to_end(), b"beforeafter")

    def test_nothing_direct_once_the_write_side_is_closing(self):
        def close():
            self.transport.loseWriteConnection()
            return direct_socket(self.transport)

        self.assertIsNone(on_reactor(close))

    def test_nothing_written_after_abort(self):
        def abort():
            write_now(self.transport, b"before")
            self.transport.abortConnection()
            # Still "connected" until the abort's callLater runs.
            self.assertIsNone(direct_socket(self.transport))
            write_now(self.transport, b"after")

        on_reactor(abort)
        self.assertEqual(self.receive_to_end(), b"before")

    def test_a_broken_connection_is_found_by_the_write(self):
        """The socket refuses the bytes (the peer reset the connection),
        and the server is not reading it (its messages wait for the layer):
        the bytes go to Twisted, whose write finds the connection broken."""
        on_reactor(self.transport.pauseProducing)
        self.client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.client.close()
        handle = self.transport.getHandle()
        wait_for(lambda: select.select([handle], [], [], 0)[0], timeout=10)
        on_reactor(write_now, self.transport, b"x")
        wait_for(lambda: self.served.lost, timeout=10)

    def test_send_now_hands_back_what_the_socket_does_not_take(self):
        def fill():
            rest = b""
            while not rest:
                rest = send_now(self.transport, b"x" * 65536)
            self.assertNotIn(self.transport, reactor.getWriters())
            return rest

        rest = on_reactor(fill)
        self.assertTrue(rest)
        # The caller writes the rest the usual way; then nothing goes direct.
        on_reactor(self.transport.write, rest)
        self.assertIsNone(on_reactor(direct_socket, self.transport))
        self.assertEqual(on_reactor(send_now, self.transport, b"ping"), b"ping")

    def test_tls_is_written_the_usual_way(self):
        """``startTLS`` on a TCP transport sets ``TLS``; its socket then
        carries TLS records, which only Twisted's write makes. (pyOpenSSL,
        needed for a real handshake, is not a dependency of the tests.)"""
        def with_tls():
            self.transport.TLS = True
            try:
                return direct_socket(self.transport)
            finally:
                del self.transport.TLS

        self.assertIsNone(on_reactor(with_tls))


class UnixDirectWriteTests(DirectWriteTests):
    family = socket.AF_UNIX

    def listen(self):
        directory = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, directory)
        self.address = os.path.join(directory, "socket")
        return reactor.listenUNIX(self.address, self.factory)

    def test_a_file_descriptor_waiting_is_sent_first(self):
        def queue():
            self.transport._sendmsgQueue.append(0)
            try:
                return direct_socket(self.transport)
            finally:
                self.transport._sendmsgQueue.clear()

        self.assertIsNone(on_reactor(queue))

    def test_twisted_still_has_what_is_read(self):
        super().test_twisted_still_has_what_is_read()
        self.assertTrue(hasattr(self.transport, "_sendmsgQueue"))


class OtherTransportTests(SimpleTestCase):
    def test_not_a_socket_transport(self):
        # A TLS protocol as transport (listenSSL), a test transport: no
        # socket to write to.
        transport = StringTransport()
        self.assertIsNone(direct_socket(transport))
        write_now(transport, b"frame")
        self.assertEqual(transport.value(), b"frame")
        self.assertEqual(send_now(transport, b"ping"), b"ping")

    def test_a_subclass_that_writes_otherwise(self):
        class Framed(tcp.Server):
            def write(self, data):
                super().write(b"[" + data + b"]")

        self.assertIsNone(direct_socket(Framed.__new__(Framed)))


class RedisCommandTests(SimpleTestCase):
    """The reactor client's commands to Redis go at once too: a command
    waits for nothing that the rest of the reactor turn could add."""

    def test_a_command_is_written_at_once_and_answered(self):
        from twisted.internet.protocol import ClientCreator

        from channels.backends.redis.resp import RespProtocol
        from tests.support.redis_servers import shared_servers

        ensure_reactor()
        server = shared_servers(1)[0]
        connection = on_reactor(lambda: ClientCreator(reactor, RespProtocol).connectTCP(
            server.host, server.port))
        self.addCleanup(on_reactor, connection.transport.loseConnection)
        answers = []

        def ping():
            connection.execute(b"*1\r\n$4\r\nPING\r\n").addCallback(answers.append)
            return connection.transport in reactor.getWriters()

        self.assertFalse(on_reactor(ping))
        wait_for(lambda: answers, timeout=10)
        self.assertEqual(answers, [b"PONG"])
