"""The interface server: listening sockets, open connections, shutdown.

One ``ChannelServer`` per backend and set of options; it may listen on
several addresses. It owns what all its connections share: the layer
bridge, what is known of the workers (``liveness``), the Autobahn factory
holding the WebSocket options, the pings and keepalives, the Host/Origin
policy and the connection count.
"""

from __future__ import annotations

import collections
import logging
import os
import resource
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from twisted.internet import defer
from twisted.internet.protocol import Factory

from channels import names
from channels.backends.base import BaseChannelBackend
from channels.interfaces.access_log import AccessLog
from channels.interfaces.config import ServerConfig
from channels.interfaces.http_protocol import HttpProtocol
from channels.interfaces.keepalive import KeepaliveScheduler, PingSweep
from channels.interfaces.layer import acquire_bridge, release_bridge
from channels.interfaces.liveness import acquire_liveness, release_liveness
from channels.interfaces.security import HostPolicy, allowed_hosts, trusted_origins
from channels.interfaces.static_files import StaticFiles
from channels.interfaces.websocket_protocol import ChannelWebSocketProtocol

logger = logging.getLogger("channels.server")

# After the shutdown's deadline, how long connections have to close (a
# client reading its 503, answering a close frame) before they are dropped.
CLOSE_WAIT = 2.0

# Descriptors kept free below RLIMIT_NOFILE for what the process opens
# besides connections (Redis connections, log files) and for accepting
# the connection that is answered 503.
FD_RESERVE = 64


def descriptor_cap(wanted: int) -> int:
    """How many connections the process's descriptor limit allows, after
    raising its soft limit towards the hard one (as far as ``wanted``
    connections need): past the limit, Twisted can only accept a connection
    to close it at once, which the client sees as a reset."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 0  # not Linux: the reserve alone
    needed = wanted + in_use + FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < needed:
        raised = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(min(wanted, soft - in_use - FD_RESERVE), 1)


def accept_deflate(offers):
    """Accept the client's permessage-deflate offer (browsers always make
    one), so conformance cases 12 and 13 and compressed chat both work."""
    for offer in offers:
        if isinstance(offer, PerMessageDeflateOffer):
            return PerMessageDeflateOfferAccept(offer)
    return None


class HttpFactory(Factory):
    def __init__(self, server: ChannelServer):
        self.server = server

    def buildProtocol(self, addr):
        protocol = HttpProtocol(self.server)
        protocol.factory = self
        return protocol


class ChannelServer:
    """Connections to and from one channel backend.

    Use on the reactor thread: ``listen_tcp``/``listen_unix``, then
    ``shutdown()`` (a Deferred) to stop accepting, let requests in progress
    finish, close every socket (WebSockets with 1001) and send their
    disconnect messages. ``static_files``, if given, answers GET and HEAD
    for its files itself.
    """

    def __init__(self, backend: BaseChannelBackend, reactor: Any,
                 config: ServerConfig | None = None, static_files: StaticFiles | None = None,
                 clock: Any = None):
        self.backend = backend
        self.reactor = reactor
        # The shutdown's deadlines and the pings' ticks (the reactor unless
        # given; tests give a ``task.Clock``).
        self.clock = reactor if clock is None else clock
        self.config = config or ServerConfig.from_settings()
        self.static_files = static_files
        config = self.config
        self.policy = HostPolicy(allowed_hosts(), trusted_origins(config.allowed_origins),
                                 own_origin=config.allowed_origins is None)
        self.access_log = AccessLog(config.access_log) if config.access_log else None
        registry = backend.registry
        # Read once: the routing does not change while the server runs.
        # Messages that no consumer takes are not sent: they would only fill
        # their channel and expire. Keepalives go only if asked for too
        # (WEBSOCKET_KEEPALIVE): 10,000 sockets send 333 a second at EXPIRY 60.
        routed = set(registry.all_channel_names())
        self.connect_routed = "websocket.connect" in routed
        self.ws_disconnect_routed = "websocket.disconnect" in routed
        self.disconnect_routed = "http.disconnect" in routed
        self.keepalive_routed = config.websocket_keepalive and "websocket.keepalive" in routed
        # What a request and a handshake need a worker for.
        self.needed_channels = {"http.request"} | (
            {"websocket.connect"} if self.connect_routed else set())
        self.layer = None
        self.liveness = None
        self.keepalive = KeepaliveScheduler(reactor, backend.expiry / 2)
        # One timer pings every open WebSocket (PING_INTERVAL 0: none).
        self.pings = PingSweep(self.clock, config.ping_interval, config.ping_timeout,
                               writers=getattr(reactor, "getWriters", None))
        self.ws_factory = self.websocket_factory()
        self.http_connections: set[HttpProtocol] = set()
        self.websockets: set[ChannelWebSocketProtocol] = set()
        self.per_client: collections.Counter[str] = collections.Counter()
        self.max_connections = config.max_connections
        self.ports: list[Any] = []
        self.started = False
        self.stopping = False
        # While shutting down: fired once the last connection has closed,
        # and the timers of the deadline and of the drop after it.
        self._drained: defer.Deferred | None = None
        self._deadline = None
        self._drop_call = None
        self._last_frame = None

    def websocket_factory(self) -> WebSocketServerFactory:
        config = self.config
        factory = WebSocketServerFactory()
        factory.setProtocolOptions(
            maxMessagePayloadSize=config.max_message_size,
            maxFramePayloadSize=config.max_message_size,
            # Our handshake waits for a worker; Autobahn's timer must not
            # fire first.
            openHandshakeTimeout=config.connect_timeout + 5,
            closeHandshakeTimeout=5,
            # A protocol error or an oversized message gets a close frame
            # with its code (1002, 1007, 1009), not a dropped connection.
            failByDrop=False,
            perMessageCompressionAccept=accept_deflate,
            tcpNoDelay=True,
            # RFC 6455 only: the drafts' version 8 reads its origin from
            # Sec-WebSocket-Origin, which browsers have not sent since 2012.
            versions=[13],
        )
        factory.server = "channels"
        return factory

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.layer = acquire_bridge(self.backend, self.reactor)
            self.liveness = acquire_liveness(self.layer, self)
            self.keepalive.start()
            self.pings.start()
            wanted = self.config.max_connections
            self.max_connections = descriptor_cap(wanted)
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            if self.max_connections < wanted:
                # A limit below the setting is a mistake to fix; one that
                # only leaves no room for the reserve is not worth a warning.
                logger.log(
                    logging.WARNING if limit < wanted else logging.INFO,
                    "At most %d connections (not MAX_CONNECTIONS, %d): the process may open "
                    "only %d files (RLIMIT_NOFILE); raise it (LimitNOFILE= in a systemd "
                    "unit, ulimit -n) to serve more", self.max_connections, wanted, limit)

    def listen_tcp(self, port: int, interface: str = "127.0.0.1") -> Any:
        self.start()
        listening = self.reactor.listenTCP(port, HttpFactory(self), backlog=1024,
                                           interface=interface)
        self.ports.append(listening)
        return listening

    def listen_unix(self, path: str) -> Any:
        self.start()
        listening = self.reactor.listenUNIX(path, HttpFactory(self))
        self.ports.append(listening)
        return listening

    def prepared_frame(self, payload: str | bytes, binary: bool) -> Any:
        """The frame for ``payload``, framed once for a run of sockets that
        get the same message (a group message arrives as one message per
        member, one after the other in a batch)."""
        last = self._last_frame
        if last is not None and last[1] is binary and last[0] == payload:
            return last[2]
        data = payload if binary else payload.encode("utf-8")
        prepared = self.ws_factory.prepareMessage(data, binary)
        self._last_frame = (payload, binary, prepared)
        return prepared

    def new_body_channel(self) -> str:
        return names.new_name(names.HTTP_BODY_PREFIX)

    # Connection bookkeeping.

    def connection_count(self) -> int:
        return len(self.http_connections) + len(self.websockets)

    def requests_in_progress(self) -> int:
        return sum(http.request is not None for http in self.http_connections)

    def connection_opened(self, protocol: HttpProtocol, address: str | None) -> int | None:
        """Register a new connection from ``address`` (the peer's); or the
        status to refuse it with: 503 at the server's cap, 429 at the
        client's (MAX_CONNECTIONS_PER_CLIENT)."""
        if self.connection_count() >= self.max_connections:
            return 503
        per_client = self.config.max_connections_per_client
        if per_client and address is not None and self.per_client[address] >= per_client:
            return 429
        self.http_connections.add(protocol)
        if address is not None:
            self.per_client[address] += 1
        protocol.peer_host = address
        return None

    def connection_switched(self, http: HttpProtocol, websocket: ChannelWebSocketProtocol):
        self.http_connections.discard(http)
        self.websockets.add(websocket)
        websocket.peer_host = http.peer_host

    def connection_closed(self, protocol: Any) -> None:
        if protocol in self.http_connections or protocol in self.websockets:
            self.http_connections.discard(protocol)
            self.websockets.discard(protocol)
            address = protocol.peer_host
            if address is not None:
                self.per_client[address] -= 1
                if not self.per_client[address]:
                    del self.per_client[address]
        if self._drained is not None and not self.connection_count():
            drained, self._drained = self._drained, None
            drained.callback(None)

    # Shutdown.

    @defer.inlineCallbacks
    def shutdown(self, timeout: float | None = None):
        """Stop the server, answering everything it has started to.

        At once: stop listening, close WebSockets with 1001 (a handshake
        still waiting for its worker gets 503) and idle HTTP connections.
        Requests in progress then get ``timeout`` seconds (default
        SHUTDOWN_TIMEOUT) to be answered; whatever is still running then is
        cut off (``HttpProtocol.cut_off``), and a connection still open
        CLOSE_WAIT seconds later is dropped. Fires once every connection
        has closed, their disconnect messages are in the backend's hands
        and the layer bridge has stopped: as soon as that is so, not after
        a fixed wait."""
        if timeout is None:
            timeout = self.config.shutdown_timeout
        self.stopping = True
        ports, self.ports = self.ports, []
        stopped = [defer.maybeDeferred(port.stopListening) for port in ports]
        self.keepalive.stop()
        self.pings.stop()
        for websocket in list(self.websockets):
            websocket.server_stopping()
        for http in list(self.http_connections):
            http.server_stopping()
        drained = None
        if self.connection_count():
            drained = self._drained = defer.Deferred()
            self._deadline = self.clock.callLater(timeout, self._cut_off)
        yield defer.DeferredList(stopped)
        if drained is not None:
            yield drained
            for call in (self._deadline, self._drop_call):
                if call is not None and call.active():
                    call.cancel()
        if self.started:
            yield self.layer.flushed()
            yield release_liveness(self.liveness, self)
            yield release_bridge(self.layer)
        if self.access_log is not None:
            self.access_log.flush()

    def cut_short(self) -> bool:
        """Reach the shutdown's deadline now (a second SIGTERM): what is
        still running is answered at once, as at the deadline. False if
        there was no deadline left to reach."""
        if self._deadline is None or not self._deadline.active():
            return False
        self._deadline.reset(0)
        return True

    def _cut_off(self) -> None:
        """SHUTDOWN_TIMEOUT has passed: answer what is still running."""
        for http in list(self.http_connections):
            http.cut_off()
        self._drop_call = self.clock.callLater(CLOSE_WAIT, self._drop_all)

    def _drop_all(self) -> None:
        """Whoever has not closed by now (a client that does not read its
        answer, or answer a close frame) is dropped."""
        for connection in [*self.websockets, *self.http_connections]:
            connection.transport.abortConnection()
