"""The interface server: listening sockets, open connections, shutdown.

One ``ChannelServer`` per backend and set of options; it may listen on
several addresses. It owns what all its connections share: the layer
bridge, the Autobahn factory holding the WebSocket options, the keepalive
scheduler, the Host/Origin policy and the connection count.
"""

from __future__ import annotations

import logging
from typing import Any

from autobahn.twisted.websocket import WebSocketServerFactory
from autobahn.websocket.compress import (
    PerMessageDeflateOffer,
    PerMessageDeflateOfferAccept,
)
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.internet.task import deferLater

from channels import names
from channels.backends.base import BaseChannelBackend
from channels.interfaces.access_log import AccessLog
from channels.interfaces.config import ServerConfig
from channels.interfaces.http_protocol import HttpProtocol
from channels.interfaces.keepalive import KeepaliveScheduler
from channels.interfaces.layer import acquire_bridge, release_bridge
from channels.interfaces.security import HostPolicy, allowed_hosts
from channels.interfaces.static_files import StaticFiles
from channels.interfaces.websocket_protocol import GOING_AWAY, ChannelWebSocketProtocol

logger = logging.getLogger("channels.server")


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
    ``shutdown()`` (a Deferred) to stop accepting, close every socket
    (WebSockets with 1001) and send their disconnect messages.
    ``static_files``, if given, answers GET and HEAD for its files itself.
    """

    def __init__(self, backend: BaseChannelBackend, reactor: Any,
                 config: ServerConfig | None = None, static_files: StaticFiles | None = None):
        self.backend = backend
        self.reactor = reactor
        self.config = config or ServerConfig.from_settings()
        self.static_files = static_files
        config = self.config
        self.policy = HostPolicy(allowed_hosts(), config.allowed_origins)
        self.access_log = AccessLog(config.access_log) if config.access_log else None
        registry = backend.registry
        # Read once: the routing does not change while the server runs.
        # Messages that no consumer takes are not sent: they would only fill
        # their channel (10,000 sockets: 1,000 keepalives a second) and expire.
        routed = set(registry.all_channel_names())
        self.connect_routed = "websocket.connect" in routed
        self.ws_disconnect_routed = "websocket.disconnect" in routed
        self.disconnect_routed = "http.disconnect" in routed
        self.keepalive_routed = "websocket.keepalive" in routed
        self.layer = None
        self.keepalive = KeepaliveScheduler(reactor, backend.expiry / 2)
        self.ws_factory = self.websocket_factory()
        self.http_connections: set[HttpProtocol] = set()
        self.websockets: set[ChannelWebSocketProtocol] = set()
        self.ports: list[Any] = []
        self.started = False
        self.stopping = False
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
            autoPingInterval=config.ping_interval,
            autoPingTimeout=config.ping_timeout if config.ping_interval else 0,
            perMessageCompressionAccept=accept_deflate,
            tcpNoDelay=True,
        )
        factory.server = "channels"
        return factory

    def start(self) -> None:
        if not self.started:
            self.started = True
            self.layer = acquire_bridge(self.backend, self.reactor)
            self.keepalive.start()

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

    def connection_opened(self, protocol: HttpProtocol) -> bool:
        """Register a new connection; False if the cap is reached."""
        if self.connection_count() >= self.config.max_connections:
            return False
        self.http_connections.add(protocol)
        return True

    def connection_switched(self, http: HttpProtocol, websocket: ChannelWebSocketProtocol):
        self.http_connections.discard(http)
        self.websockets.add(websocket)

    def connection_closed(self, protocol: Any) -> None:
        self.http_connections.discard(protocol)
        self.websockets.discard(protocol)

    # Shutdown.

    @defer.inlineCallbacks
    def shutdown(self, grace: float = 5.0):
        """Stop accepting, close every connection, and fire once their
        disconnect messages are in the backend's hands."""
        self.stopping = True
        yield defer.DeferredList([defer.maybeDeferred(p.stopListening) for p in self.ports])
        self.ports = []
        self.keepalive.stop()
        for websocket in list(self.websockets):
            if websocket.state == websocket.STATE_OPEN:
                websocket.close_with(GOING_AWAY, "Server shutting down")
            else:
                websocket.dropConnection(abort=True)
        for http in list(self.http_connections):
            # Requests in progress get the grace period to be answered.
            if http.request is None:
                http.close_connection()
        # Give clients a moment to answer the close frames.
        deadline = self.reactor.seconds() + grace
        while self.connection_count() and self.reactor.seconds() < deadline:
            yield _sleep(self.reactor, 0.05)
        for connection in list(self.websockets) + list(self.http_connections):
            connection.transport.abortConnection()
        yield _sleep(self.reactor, 0)
        if self.started:
            yield self.layer.flushed()
            release_bridge(self.layer)
        if self.access_log is not None:
            self.access_log.flush()


def _sleep(reactor: Any, seconds: float) -> defer.Deferred:
    return deferLater(reactor, seconds, lambda: None)
