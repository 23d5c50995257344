"""One WebSocket connection, spoken by Autobahn, bridged to channels.

The HTTP protocol reads the upgrade request, then hands the socket to an
instance of this class, which completes the handshake only once a worker has
decided (``websocket.connect``), numbers what the client says (``order``)
and turns reply-channel messages into frames.

What the client says goes to the layer through a ``ReceiveQueue``, which
keeps the socket to its share of ``websocket.receive``; frames to the
client go through an ``Outbox``, which holds at most
``MAX_WEBSOCKET_BUFFER`` bytes for a client that reads slower than the
workers send before its reply channel is paused.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from autobahn.twisted.websocket import WebSocketServerProtocol
from autobahn.websocket.types import ConnectionDeny
from twisted.internet.defer import Deferred

from channels.direct_write import send_now
from channels.exceptions import ChannelFull, InvalidMessage
from channels.interfaces import metrics as server_metrics
from channels.interfaces.keepalive import PING_FRAME, PONG_LENGTH, PONG_START
from channels.interfaces.outbox import Outbox
from channels.interfaces.receive_queue import ReceiveQueue
from channels.interfaces.simple_frames import read_simple_frames
from channels.messages import websocket as websocket_messages
from channels.names import WEBSOCKET_REPLY_PREFIX

if TYPE_CHECKING:
    from channels.interfaces.server import ChannelServer

logger = logging.getLogger("channels.server")

GOING_AWAY = 1001
POLICY_VIOLATION = 1008
INTERNAL_ERROR = 1011
TRY_AGAIN_LATER = 1013
MESSAGE_TOO_BIG = 1009


class ChannelWebSocketProtocol(WebSocketServerProtocol):
    """Options (size limits, timeouts) come from the server's Autobahn
    factory, copied per instance by Autobahn; none is set on this class,
    where a function option would become a method. Pings come from the
    server's ``PingSweep``, not Autobahn."""

    def __init__(self, server: ChannelServer, scope: dict[str, Any]):
        super().__init__()
        self.server = server
        # The handshake's fields, for websocket.connect only; an open socket
        # keeps just its path and client.
        self.scope: dict[str, Any] | None = scope
        self.path: str = scope["path"]
        self.client = scope["client"]
        self.reply_channel: str | None = None
        self.order = 0
        self.decision: Deferred | None = None
        self.decision_timer = None
        self.early_frames: list[dict] | None = None
        self.opened = False
        self.connect_sent = False
        # Set once open: what the client says, and what it is sent.
        self.inbound: ReceiveQueue | None = None
        self.outbox: Outbox | None = None
        # The reply channel is paused: the client is behind.
        self.reply_paused = False
        # (target, http_version) for the access log, when there is one.
        self.request_line: tuple[bytes, bytes] | None = None
        # When the client was last heard from, in the server's ping ticks
        # (channels.interfaces.keepalive.PingSweep); whether it is read.
        self.heard = 0
        self.reading = True
        # The largest message read without Autobahn's parser, once open;
        # None: every frame goes to Autobahn (``simple_frames_limit``).
        self.frame_limit: int | None = None

    # Handshake.

    def onConnect(self, request):
        server = self.server
        # Autobahn reads the origin from the header its version uses.
        if not server.policy.origin_allowed(request.origin or None,
                                            self.scope["scheme"] == "wss",
                                            request.headers.get("host")):
            raise ConnectionDeny(403, "Origin not allowed")
        refusal = server.liveness.refusal("websocket.connect") if server.connect_routed else None
        if refusal is not None:
            # As a refused send is: the decision never comes.
            self.decision = Deferred()
            server.reactor.callLater(0, self.deny, 503, refusal, True)
            return self.decision
        self.reply_channel = server.layer.new_reply_channel(WEBSOCKET_REPLY_PREFIX, self.on_reply,
                                                            self.inbox_lost)
        server.liveness.watch(self.reply_channel, self)
        fields, self.scope = self.scope, None
        if not server.connect_routed:
            return None
        message = websocket_messages.connect_message(fields, self.reply_channel)
        self.decision = Deferred()
        self.early_frames = []
        self.decision_timer = server.reactor.callLater(
            server.config.connect_timeout, self.deny, 503, "No answer from a worker in time")
        self.connect_sent = True
        server.layer.send("websocket.connect", message, self.connect_failed)
        return self.decision

    def connect_failed(self, exc: Exception) -> None:
        if isinstance(exc, ChannelFull):
            self.deny(503, "Server busy", retry_after=True)
        else:
            self.deny(503, "Channel layer unavailable", retry_after=True)

    def deny(self, code: int, reason: str, retry_after: bool = False) -> None:
        decision = self.take_decision()
        if decision is None:
            return
        if retry_after:
            # ConnectionDeny carries no headers: fail the handshake here and
            # leave Autobahn's Deferred unfired (the connection is gone).
            self.failHandshake(reason, code, [("Retry-After", "1")])
        else:
            decision.errback(ConnectionDeny(code, reason))

    def accept(self) -> None:
        decision = self.take_decision()
        if decision is not None:
            decision.callback(None)

    def take_decision(self) -> Deferred | None:
        """The pending decision, once: only the first answer counts."""
        decision, self.decision = self.decision, None
        if self.decision_timer is not None:
            if self.decision_timer.active():
                self.decision_timer.cancel()
            self.decision_timer = None
        return decision

    def failHandshake(self, reason, code=400, responseHeaders=None):
        self.log_access(code)
        super().failHandshake(reason, code, responseHeaders)

    def log_access(self, status: int, method: bytes = b"GET") -> None:
        """The handshake's line (101, or the refusal status); and, with
        ``method`` WSDISCONNECT, a line with the close code when an open
        socket closes, so a log shows how long each one lived. The handshake's
        answer is counted with the HTTP responses."""
        if method == b"GET" and server_metrics.active is not None:
            server_metrics.active.responses[status] += 1
        if self.request_line is not None:
            target, version = self.request_line
            self.server.access_log.log(self.client, method, target, version, status, 0)

    def onOpen(self):
        self.log_access(101)
        self.opened = True
        self.frame_limit = self.simple_frames_limit()
        server = self.server
        self.inbound = ReceiveQueue(server, self.reply_channel, self.path,
                                    self.set_reading, self.receive_failed)
        limit = server.config.max_websocket_buffer
        self.outbox = Outbox(self.transport, server.reactor, limit, server.config.write_timeout,
                             self.stalled, self.client_behind, hard_limit=2 * limit)
        server.pings.add(self)
        if server.keepalive_routed:
            server.keepalive.add(self)
        frames, self.early_frames = self.early_frames, None
        for content in frames or ():
            self.on_reply(content)

    # Replies.

    def on_reply(self, content: dict[str, Any]) -> None:
        if self.decision is not None:
            decision = websocket_messages.handshake_decision(content)
            if decision is False:
                self.deny(403, "Rejected by the application")
            elif decision:
                self.early_frames.append(content)
                self.accept()
            return
        if self.early_frames is not None:
            # Accepted, waiting for Autobahn to finish the handshake.
            self.early_frames.append(content)
            return
        if not self.opened or self.state != self.STATE_OPEN:
            return
        metrics = server_metrics.active
        text = content.get("text")
        if text is not None:
            self.sendPreparedMessage(self.server.prepared_frame(text, False))
            if metrics is not None:
                metrics.websocket_out += 1
        data = content.get("bytes")
        if data is not None:
            self.sendPreparedMessage(self.server.prepared_frame(data, True))
            if metrics is not None:
                metrics.websocket_out += 1
        close = content.get("close")
        if close is not None:
            try:
                code = websocket_messages.close_code(close)
            except websocket_messages.InvalidCloseCode:
                logger.warning("Invalid close code %r on %s; closing with 1000",
                               close, self.reply_channel)
                code = websocket_messages.NORMAL_CLOSURE
            if code is not None:
                self.sendClose(code)

    # Flow control.

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        """Every frame Autobahn writes once the socket is open goes through
        the outbox, so that what a client leaves unread is counted."""
        if self.outbox is None or sync or chopsize:
            super().sendData(data, sync, chopsize)
        else:
            self.outbox.write(data)

    def client_behind(self, behind: bool) -> None:
        """Called by the outbox: more than MAX_WEBSOCKET_BUFFER bytes wait
        for the client (the worker's sends to the reply channel are refused
        until it catches up), or it has caught up."""
        if behind is not self.reply_paused and self.reply_channel is not None:
            self.reply_paused = behind
            self.server.layer.pause(self.reply_channel, behind)

    def stalled(self) -> None:
        """Called by the outbox, which has dropped what waited: the client
        has read nothing for WRITE_TIMEOUT with more than
        MAX_WEBSOCKET_BUFFER bytes waiting for it, or twice that waits.
        Closed with 1008 (it broke the server's rule of reading what it is
        sent); the close frame may never be read, and Autobahn drops the
        connection when the close handshake times out."""
        config = self.server.config
        logger.warning(
            "Closing WebSocket %s of %s with 1008: it does not read what it is sent "
            "(more than MAX_WEBSOCKET_BUFFER, %d bytes, waited WRITE_TIMEOUT, %s s, "
            "or twice as many bytes waited)",
            self.path, self.client[0] if self.client else "a client",
            config.max_websocket_buffer, config.write_timeout)
        self.close_with(POLICY_VIOLATION, "Not reading")

    def set_reading(self, reading: bool) -> None:
        """Called by the receive queue: stop reading from the client while
        its share of websocket.receive is in flight, and read again."""
        self.reading = reading
        if reading:
            self.transport.resumeProducing()
        else:
            self.transport.pauseProducing()

    def close_with(self, code: int, reason: str = "") -> None:
        """Close with a code that applications may not send themselves
        (1001, 1011, 1013), or 1008. The receive queue sends no more, and
        the socket is read again, so that the client's answer is heard."""
        if self.inbound is not None:
            self.inbound.close()
        if self.state == self.STATE_OPEN:
            self.sendCloseFrame(code=code, reasonUtf8=reason.encode("utf-8")[:120],
                                isReply=False)

    def server_stopping(self) -> None:
        """Close with 1001 (going away) at once; a handshake still waiting
        for its worker's decision is refused with 503 instead."""
        if self.decision is not None:
            self.deny(503, "Server shutting down", retry_after=True)
        elif self.state == self.STATE_OPEN:
            self.close_with(GOING_AWAY, "Server shutting down")
        elif self.state == self.STATE_CONNECTING:
            self.failHandshake("Server shutting down", 503, [("Retry-After", "1")])

    # What the client says.

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.order += 1
        if server_metrics.active is not None:
            server_metrics.active.websocket_in += 1
        self.inbound.add(self.order, payload, isBinary)

    def receive_failed(self, exc: Exception) -> None:
        """Called once by the receive queue with the refusal that ends the
        socket."""
        if isinstance(exc, ChannelFull):
            self.close_with(TRY_AGAIN_LATER, "Server busy")
        elif isinstance(exc, InvalidMessage):
            self.close_with(MESSAGE_TOO_BIG, "Message too big")
        else:
            self.close_with(INTERNAL_ERROR, "Channel layer unavailable")

    # What the heartbeats tell (channels.interfaces.liveness).

    def waiting_on(self) -> str | None:
        return "websocket.connect" if self.decision is not None else None

    def worker_lost(self, channel: str, reason: str) -> None:
        """A worker that died held this socket's ``channel`` message: a
        handshake waiting for its decision is refused (503); an open socket
        whose ``websocket.receive`` went with it is closed with 1011, so
        that its client knows that a message was lost. Delivery is at most
        once: nothing is sent again."""
        if channel == "websocket.connect" and self.decision is not None:
            self.deny(503, reason, retry_after=True)
        elif channel == "websocket.receive" and self.state == self.STATE_OPEN:
            self.close_with(INTERNAL_ERROR, "A worker stopped with a message of this socket")

    def inbox_lost(self) -> None:
        """This socket's replies can no longer arrive (its inbox cannot be
        read, ``channels.interfaces.layer``): a handshake is refused (503),
        an open socket closed with 1011, its client free to connect again."""
        if self.decision is not None:
            self.deny(503, "Channel layer unavailable", retry_after=True)
        elif self.state == self.STATE_OPEN:
            self.close_with(INTERNAL_ERROR, "Channel layer unavailable")
        elif self.state == self.STATE_CONNECTING:
            self.failHandshake("Channel layer unavailable", 503, [("Retry-After", "1")])

    # Pings (channels.interfaces.keepalive.PingSweep).

    def dataReceived(self, data: bytes) -> None:
        """Anything from the client shows it alive. A pong alone, an idle
        socket's answer to its ping, needs nothing more: it skips Autobahn's
        frame parsing, most of what a ping cost. Whole small messages at the
        start of a read skip it too (``channels.interfaces.simple_frames``);
        Autobahn reads the rest."""
        self.heard = self.server.pings.now
        if self.state == self.STATE_OPEN and self.current_frame is None and not self.data:
            if len(data) == PONG_LENGTH and data.startswith(PONG_START):
                return
            if self.frame_limit is not None and not self.inside_message \
                    and self._listeners is None:
                frames = read_simple_frames(data, self.frame_limit)
                if frames:
                    data = self.deliver_simple_frames(frames, data)
                    if not data:
                        return
        super().dataReceived(data)

    def simple_frames_limit(self) -> int | None:
        """The largest message that ``dataReceived`` may read without
        Autobahn's parser, or None when it may read none: not when an
        extension gives the RSV bits a meaning, nor when Autobahn does more
        per message than deliver it (log frames or octets, track timings,
        ping on its own, leave frames masked) or speaks a draft's framing."""
        if (self._perMessageCompress is not None or self.websocket_extensions_in_use
                or self.logFrames or self.logOctets or self.trackedTimings
                or self.autoPingInterval or not self.applyMask or self.websocket_version == 0):
            return None
        limits = [limit for limit in (self.maxMessagePayloadSize, self.maxFramePayloadSize)
                  if limit > 0]
        return min([*limits, 0xFFFF])

    def deliver_simple_frames(self, frames: list[tuple[bytes, bool, int]], data: bytes) -> bytes:
        """Deliver each message as Autobahn would once it has read its frame
        (``onFrameData``, ``onFrameEnd``, ``onMessageEnd``): its traffic
        counts, then ``_onMessage``. The rest of ``data``, for Autobahn:
        after the last frame, or sooner if a message closed the socket, as
        Autobahn reads what follows a close it sent differently."""
        stats = self.trafficStats
        # As Autobahn's _dataReceived counts a read while open; it counts
        # again what it is handed while still open.
        stats.incomingOctetsWireLevel += len(data)
        for payload, binary, end in frames:
            length = len(payload)
            stats.incomingOctetsWebSocketLevel += length
            stats.incomingOctetsAppLevel += length
            stats.incomingWebSocketFrames += 1
            stats.incomingWebSocketMessages += 1
            self._onMessage(payload, binary)
            if self.state != self.STATE_OPEN:
                return data[end:]
        rest = data[frames[-1][2]:]
        stats.incomingOctetsWireLevel -= len(rest)
        return rest

    def ping(self, direct: bool) -> None:
        """Send a ping: straight to the socket if ``direct`` (nothing of
        this connection waits in Twisted), else after what waits."""
        if self.state == self.STATE_OPEN:
            rest = send_now(self.transport, PING_FRAME) if direct else PING_FRAME
            if rest:
                self.sendData(rest)

    def ping_timed_out(self) -> bool:
        """Nothing heard for PING_TIMEOUT since a ping: the peer is gone or
        cut off, so drop the connection, as Autobahn does, without a closing
        handshake that would wait for it in vain; its disconnect says 1006.
        Not while this server has stopped reading the client (its messages
        wait for the layer): a pong cannot be heard then. Whether dropped."""
        if not self.reading:
            return False
        self.wasClean = False
        self.wasNotCleanReason = "WebSocket ping timeout (peer did not respond with pong in time)"
        self.dropConnection(abort=True)
        return True

    def keepalive(self) -> None:
        self.server.layer.send(
            "websocket.keepalive",
            websocket_messages.keepalive_message(self.reply_channel, self.path))

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        server = self.server
        if self.closedByMe and self.localCloseCode:
            # We closed: our code says why (1009, 1013...), not the client's
            # echo of it, nor 1006 when the client left without echoing it.
            code = self.localCloseCode
        self.take_decision()  # a client that left needs no answer
        self.early_frames = None
        if self.inbound is not None:
            self.inbound.close()
        if self.outbox is not None:
            self.outbox.discard()
        # A worker still sending goes on (its messages are dropped here)
        # instead of waiting for a client that is gone.
        self.client_behind(False)
        server.keepalive.discard(self)
        server.pings.discard(self)
        if self.reply_channel is not None:
            server.layer.forget(self.reply_channel)
            server.layer.leave_groups(self.reply_channel)
            server.liveness.unwatch(self.reply_channel)
            if (self.connect_sent or self.opened) and server.ws_disconnect_routed:
                server.layer.send("websocket.disconnect", websocket_messages.disconnect_message(
                    self.reply_channel, self.path, self.order + 1, code))
        if self.opened:
            code = code or websocket_messages.ABNORMAL_CLOSURE
            self.log_access(code, b"WSDISCONNECT")
            if server_metrics.active is not None:
                server_metrics.active.closes[code] += 1
        server.connection_closed(self)
