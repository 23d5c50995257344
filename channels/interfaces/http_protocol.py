"""HTTP/1.1 on one connection, parsed by h11, and the switch to WebSocket.

Every connection starts here. Requests become ``http.request`` messages
(bodies over one chunk follow on a body channel as they arrive, so a 20 MB
upload never sits in memory whole); response messages are written as they
come, chunked when they stream. An upgrade request on any path hands the
socket to the WebSocket protocol, and this object is dropped: an idle
WebSocket carries no HTTP state.

One timer at a time watches the client or the worker, whichever is awaited:
the request head (408), a body that stalls (408), the response (504), or an
idle keep-alive connection (closed). Response bytes go out through an
``Outbox``, which drops a client that stops reading them.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import h11
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol
from zope.interface import implementer

from channels.exceptions import ChannelFull
from channels.interfaces.security import forwarded_client, forwarded_secure
from channels.interfaces.websocket_protocol import ChannelWebSocketProtocol
from channels.messages import http as http_messages
from channels.names import HTTP_REPLY_PREFIX

if TYPE_CHECKING:
    from channels.interfaces.config import ServerConfig
    from channels.interfaces.server import ChannelServer

logger = logging.getLogger("channels.server")

CHUNK = http_messages.BODY_CHUNK_SIZE

# A body chunk refused because its channel is full is sent again after
# RETRY_FIRST seconds, then after twice as long each time, up to RETRY_MAX:
# quick when a view reads steadily, a few sends a second when it does not.
RETRY_FIRST = 0.01
RETRY_MAX = 0.25

# Closing a socket with unread data in it makes the kernel reset the
# connection, and a reset can reach the client before the answer it follows
# (a 413, or a view that answered without reading the upload). So after
# answering a request whose body is still coming, the server closes its own
# side only, and reads on, discarding, until the client closes or for this
# many seconds at the most.
LINGER = 2.0


def _address(address: Any) -> list | None:
    host = getattr(address, "host", None)
    return None if host is None else [host, address.port]


def _is_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    upgrade = connection = False
    for name, value in headers:
        if name == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
        elif name == b"connection" and b"upgrade" in value.lower():
            connection = True
    return upgrade and connection


class HttpProtocol(Protocol):
    def __init__(self, server: ChannelServer):
        self.server = server
        self.conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=server.config.max_header_size)
        self.timer = None
        self.request: Request | None = None
        # Reading paused: a pipelined request waits for the current response.
        self.paused = False
        # Reading paused: the request body waits for its channel to take it.
        self.throttled = False
        self.reading = True
        self.idle = False
        self.lingering = False
        self.outbox: Outbox | None = None

    def connectionMade(self) -> None:
        server = self.server
        self.client = _address(self.transport.getPeer())
        self.local = _address(self.transport.getHost())
        self.secure = False
        if not server.connection_opened(self):
            self.transport.write(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n"
                b"Connection: close\r\nContent-Length: 0\r\n\r\n")
            self.transport.loseConnection()
            return
        self.outbox = Outbox(self.transport, server.reactor, server.config,
                             self.drop_slow_reader, self.client_behind)
        # Idle until the first byte: a connection that never says anything
        # is closed without an answer.
        self.idle = True
        self.set_timer(server.config.header_timeout, self.timed_out)

    # Timers.

    def set_timer(self, delay: float, callback) -> None:
        self.cancel_timer()
        if delay > 0:
            self.timer = self.server.reactor.callLater(delay, callback)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None

    def timed_out(self) -> None:
        """The client was too slow sending a request head or body."""
        self.timer = None
        if self.idle:
            self.close_connection()
        else:
            self.send_error(408, "Request timeout")

    # Incoming bytes.

    def dataReceived(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body nobody reads
        if self.idle:
            # The first bytes of the next request on a kept-alive connection.
            self.idle = False
            self.set_timer(self.server.config.header_timeout, self.timed_out)
        try:
            self.conn.receive_data(data)
        except RuntimeError:
            # Data after we decided to close; nothing more to read.
            return
        self.process()

    def process(self) -> None:
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError as exc:
                self.send_error(exc.error_status_hint, str(exc))
                return
            if event is h11.NEED_DATA:
                return
            if event is h11.PAUSED:
                # A pipelined request waits for the current response.
                if not self.paused and self.conn.their_state is not h11.MIGHT_SWITCH_PROTOCOL:
                    self.paused = True
                    self.update_reading()
                return
            if isinstance(event, h11.Request):
                if not self.start_request(event):
                    return
            elif isinstance(event, h11.Data):
                if self.request is not None:
                    self.request.body_received(event.data)
            elif isinstance(event, h11.EndOfMessage):
                request = self.request
                if request is not None:
                    if request.upgrade:
                        self.switch_to_websocket(request)
                        return
                    request.body_received(b"", end=True)
            elif isinstance(event, h11.ConnectionClosed):
                return

    def start_request(self, event: h11.Request) -> bool:
        server = self.server
        config = server.config
        headers = list(event.headers)
        host = None
        for name, value in headers:
            if name == b"host":
                host = value.decode("latin-1")
                break
        client, secure = self.client, self.secure
        if config.proxy_headers:
            wanted = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers
                      if name.startswith(b"x-forwarded-")}
            client = forwarded_client(wanted, client)
            secure = forwarded_secure(wanted, secure)
        request = Request(self, event, headers, client, secure)
        self.request = request
        # h11 limits only a head that arrives in pieces; one that came in a
        # single read is measured here.
        size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in headers)
        if size > config.max_header_size:
            self.send_error(431, "Request header fields too large")
            return False
        if not server.policy.host_allowed(host):
            self.send_error(400, "Host not allowed")
            return False
        if _is_upgrade(headers) and event.method == b"GET":
            request.upgrade = True
            return True
        length = request.content_length()
        if length is not None and length > config.max_body_size:
            self.send_error(413, "Request body too large")
            return False
        if self.conn.client_is_waiting_for_100_continue:
            self.write(h11.InformationalResponse(status_code=100, headers=[]))
        self.set_timer(config.body_timeout, self.timed_out)
        return True

    def throttle(self, hold: bool) -> None:
        """Stop (or restart) reading from the client because the current
        request's body has (or no longer has) a chunk it cannot hand over."""
        if hold is not self.throttled:
            self.throttled = hold
            self.update_reading()

    def update_reading(self) -> None:
        """Pause or resume the transport: either reason to pause is enough."""
        reading = not (self.paused or self.throttled)
        if reading is not self.reading:
            self.reading = reading
            if reading:
                self.transport.resumeProducing()
            else:
                self.transport.pauseProducing()

    def switch_to_websocket(self, request: Request) -> None:
        """Hand the socket to Autobahn, replaying the handshake bytes it
        needs to read the request itself."""
        self.cancel_timer()
        event = request.event
        head = [b"GET " + event.target + b" HTTP/" + event.http_version + b"\r\n"]
        head.extend(name + b": " + value + b"\r\n" for name, value in event.headers.raw_items())
        head.append(b"\r\n")
        rest = self.conn.trailing_data[0]
        scheme = "wss" if request.secure else "ws"
        scope = http_messages.connection_fields(
            event.target, request.headers, request.client, self.local, scheme)
        self.outbox.release()
        protocol = ChannelWebSocketProtocol(self.server, scope)
        protocol.factory = self.server.ws_factory
        if self.server.access_log is not None:
            protocol.request_line = (event.target, event.http_version)
        transport = self.transport
        self.server.connection_switched(self, protocol)
        transport.protocol = protocol
        protocol.makeConnection(transport)
        protocol.dataReceived(b"".join(head) + rest)

    # Responses.

    def send_error(self, status: int, text: str, retry_after: bool = False) -> None:
        """Answer with a plain-text error and close, whatever state the
        request is in (the status line may already be out: then just close)."""
        if self.request is not None:
            self.request.abandon()
        if self.conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
            body = f"{status} {text}\n".encode()
            headers = [(b"content-type", b"text/plain; charset=utf-8"),
                       (b"content-length", str(len(body)).encode()),
                       (b"connection", b"close")]
            if retry_after:
                headers.append((b"retry-after", b"1"))
            try:
                self.write(h11.Response(status_code=status, headers=headers))
                self.write(h11.Data(data=body))
                self.write(h11.EndOfMessage())
            except h11.LocalProtocolError:
                pass
            self.log_access(status, len(body))
        self.close_connection()

    def write(self, event) -> None:
        data = self.conn.send(event)
        if data:
            self.outbox.write(data)

    def close_connection(self) -> None:
        """Close once what was written has been sent (see LINGER for a
        client still sending a body)."""
        self.cancel_timer()
        if self.conn.their_state is h11.SEND_BODY:
            self.outbox.when_sent(self.linger)
        else:
            self.outbox.close()

    def linger(self) -> None:
        self.outbox.release()
        self.lingering = True
        self.paused = self.throttled = False
        self.update_reading()
        self.transport.loseWriteConnection()
        self.set_timer(LINGER, self.transport.abortConnection)

    def client_behind(self, behind: bool) -> None:
        """Called by the outbox when the client falls behind the response
        by more than MAX_RESPONSE_BUFFER, and when it has caught up."""
        if self.request is not None:
            self.request.client_behind(behind)

    def drop_slow_reader(self) -> None:
        """Called by the outbox: the client has stopped reading. Abort (a
        graceful close would wait for it to read) and tell the application,
        as for any client that leaves early."""
        config = self.server.config
        request = self.request
        logger.warning(
            "Dropping the HTTP connection of %s%s: more than %d bytes of response have "
            "waited %s s for it to read them (MAX_RESPONSE_BUFFER, WRITE_TIMEOUT)",
            self.client[0] if self.client else "a client",
            f" ({request.path})" if request is not None and request.path else "",
            config.max_response_buffer, config.write_timeout)
        self.cancel_timer()
        if request is not None:
            self.request = None
            request.client_left()
        self.transport.abortConnection()

    def log_access(self, status: int, size: int) -> None:
        request = self.request
        if request is not None and self.server.access_log is not None:
            self.server.access_log.log(request.client, request.event.method,
                                       request.event.target, request.event.http_version,
                                       status, size)

    def response_done(self) -> None:
        """The response is complete: next request, or close."""
        self.request = None
        if (self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is not h11.DONE
                or self.server.stopping):
            self.close_connection()
            return
        self.conn.start_next_cycle()
        self.idle = True
        self.set_timer(self.server.config.keepalive_timeout, self.timed_out)
        self.paused = self.throttled = False
        self.update_reading()
        self.process()

    def connectionLost(self, reason=None) -> None:
        self.cancel_timer()
        if self.outbox is not None:
            self.outbox.discard()
        if self.request is not None:
            self.request.client_left()
            self.request = None
        self.server.connection_closed(self)


class Request:
    """One request and its response, on one HTTP connection."""

    def __init__(self, protocol: HttpProtocol, event: h11.Request,
                 headers: list[tuple[bytes, bytes]], client: list | None, secure: bool):
        self.protocol = protocol
        self.event = event
        self.headers = headers
        self.client = client
        self.secure = secure
        self.upgrade = False
        # Body bytes received and not yet handed to the layer; None once the
        # last chunk has been.
        self.buffer: list[bytes] | None = []
        self.buffered = 0
        self.received = 0
        # The whole body has been received.
        self.end = False
        # A message (http.request or a body chunk) is with the layer, or
        # waits to be sent again: the next waits for it.
        self.in_flight = False
        # The body message in flight, kept to send again if refused.
        self.sending: dict[str, Any] | None = None
        self.retry_call = None
        self.delay = RETRY_FIRST
        # When the body channel first refused ``sending`` (full), if it did.
        self.refused_since: float | None = None
        # The client left mid-upload: the closed message is still to send.
        self.closing = False
        self.give_up_at = 0.0
        self.reply_channel: str | None = None
        # The reply channel is paused: the client is behind (see Outbox).
        self.reply_paused = False
        self.body_channel: str | None = None
        self.path = ""
        self.response_started = False
        self.sent_bytes = 0
        self.status = 0
        self.done = False

    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                return int(value)
        return None

    # Body, client → worker.

    def body_received(self, data: bytes, end: bool = False) -> None:
        if self.done:
            return
        protocol = self.protocol
        config = protocol.server.config
        self.received += len(data)
        if self.received > config.max_body_size:
            protocol.send_error(413, "Request body too large")
            return
        if data:
            self.buffer.append(data)
            self.buffered += len(data)
        if end:
            self.end = True
            protocol.set_timer(config.http_timeout, self.response_timed_out)
        elif protocol.timer is not None:
            protocol.timer.reset(config.body_timeout)
        self.send_next()

    def take(self, size: int) -> bytes:
        data = b"".join(self.buffer)
        first, rest = data[:size], data[size:]
        self.buffer = [rest] if rest else []
        self.buffered = len(rest)
        return first

    def send_next(self) -> None:
        """Hand the layer the next message of this request once the one
        before has been taken: ``http.request``, then each body chunk (whole
        chunks; at the end, the rest, maybe empty, as the last). One at a
        time, so that no chunk can overtake one that its full channel
        refused. While a whole chunk waits behind it the client is not read
        from, which holds an upload to the pace of the view that reads it
        with at most about two chunks of it in this process; and the client
        is not timed meanwhile, since it is waiting for us."""
        if not self.in_flight:
            if self.reply_channel is None:
                if self.end or self.buffered > CHUNK:
                    self.send_request()
            elif self.buffer is not None and (self.buffered >= CHUNK or self.end):
                content = self.take(CHUNK)
                last = self.end and not self.buffered
                if last:
                    self.buffer = None
                self.send_body({"content": content, "more_content": not last})
        hold = self.in_flight and not self.end and self.buffered >= CHUNK
        protocol = self.protocol
        if hold is not protocol.throttled:
            protocol.throttle(hold)
            if hold:
                protocol.cancel_timer()
            else:
                self.watch()

    def send_request(self) -> None:
        protocol = self.protocol
        server = protocol.server
        event = self.event
        self.reply_channel = server.layer.new_reply_channel(HTTP_REPLY_PREFIX, self.on_reply)
        body = self.take(CHUNK)
        if not self.end or self.buffered:
            self.body_channel = server.new_body_channel()
        else:
            self.buffer = None
        message = http_messages.request_message(
            event.target, self.headers, self.client, protocol.local,
            "https" if self.secure else "http",
            reply_channel=self.reply_channel, method=event.method.decode("latin-1"),
            http_version=event.http_version.decode("latin-1"), body=body,
            body_channel=self.body_channel, root_path=server.config.root_path)
        self.path = message["path"]
        if self.body_channel is None:
            # Nothing follows: no need to hear when it is taken.
            server.layer.send("http.request", message, self.request_refused)
        else:
            self.in_flight = True
            server.layer.send("http.request", message, self.request_refused,
                              self.message_taken)

    def send_body(self, message: dict[str, Any]) -> None:
        self.in_flight = True
        self.sending = message
        self.send_again()

    def send_again(self) -> None:
        self.retry_call = None
        self.protocol.server.layer.send(self.body_channel, self.sending, self.body_refused,
                                        self.message_taken)

    def message_taken(self) -> None:
        """The layer took the message in flight: send the next."""
        taken, self.sending = self.sending, None
        self.in_flight = False
        self.delay = RETRY_FIRST
        self.refused_since = None
        if not self.done:
            self.send_next()
        elif self.closing and (taken is None or taken.get("more_content")):
            self.send_closed()

    def body_refused(self, exc: Exception) -> None:
        """A body chunk (or the closed message) was not sent. A full channel
        means that the view reads slower than the client sends: send it
        again a little later. Anything else is a 503."""
        if not isinstance(exc, ChannelFull):
            self.in_flight = False
            self.sending = None
            self.request_failed(exc)
            return
        server = self.protocol.server
        now = server.reactor.seconds()
        if self.done:
            if not self.sending.get("closed") or now >= self.give_up_at:
                # Nobody needs the chunk any more, or the worker has read
                # nothing for HTTP_TIMEOUT since the client left.
                self.in_flight = False
                self.sending = None
                if self.closing:
                    self.send_closed()
                return
        elif not self.response_started:
            if self.refused_since is None:
                self.refused_since = now
            elif now - self.refused_since >= server.config.http_timeout:
                # The view has taken nothing for that long and not answered.
                self.in_flight = False
                self.sending = None
                self.no_response()
                return
        self.retry_call = server.reactor.callLater(self.delay, self.send_again)
        self.delay = min(self.delay * 2, RETRY_MAX)

    def send_closed(self) -> None:
        """Tell the worker, after the last chunk it got, that no more will come."""
        self.closing = False
        self.send_body(http_messages.closed_body_message())

    def watch(self) -> None:
        """Arm the timer for whichever end is awaited: the client while the
        body comes in, the worker once it is all in, none once the
        response has started."""
        if self.response_started:
            return
        protocol = self.protocol
        config = protocol.server.config
        if self.end:
            protocol.set_timer(config.http_timeout, self.response_timed_out)
        else:
            protocol.set_timer(config.body_timeout, protocol.timed_out)

    def request_refused(self, exc: Exception) -> None:
        """``http.request`` was not sent: no worker will read its body channel."""
        self.body_channel = None
        self.request_failed(exc)

    def request_failed(self, exc: Exception) -> None:
        self.in_flight = False
        if self.done or self.response_started:
            return
        if isinstance(exc, ChannelFull):
            self.protocol.send_error(503, "Server busy, try again", retry_after=True)
        else:
            self.protocol.send_error(503, "Channel layer unavailable", retry_after=True)

    def response_timed_out(self) -> None:
        self.protocol.timer = None
        self.no_response()

    def no_response(self) -> None:
        if not self.response_started:
            self.protocol.send_error(504, "No response from a worker in time")

    # Response, worker → client.

    def on_reply(self, content: dict[str, Any]) -> None:
        if self.done:
            return
        protocol = self.protocol
        try:
            if not self.response_started:
                start = http_messages.response_start(content)
                self.response_started = True
                protocol.cancel_timer()
                self.status = start.status
                headers = start.headers
                if not start.more_content and not any(
                        name.lower() in (b"content-length", b"transfer-encoding")
                        for name, _ in headers):
                    headers = [*headers, (b"content-length", str(len(start.content)).encode())]
                protocol.write(h11.Response(status_code=start.status, headers=headers,
                                            reason=start.reason.encode("latin-1")))
                data, more = start.content, start.more_content
            else:
                chunk = http_messages.response_chunk(content)
                data, more = chunk.content, chunk.more_content
            # A response to HEAD has the headers of a GET's and no body.
            if data and self.event.method != b"HEAD":
                self.sent_bytes += len(data)
                protocol.write(h11.Data(data=data))
            if not more:
                protocol.write(h11.EndOfMessage())
        except (http_messages.MalformedResponse, h11.LocalProtocolError, ValueError) as exc:
            logger.error("Bad response on %s: %s", self.reply_channel, exc)
            if not self.response_started or self.conn_state_allows_error():
                protocol.send_error(500, "Internal server error")
            else:
                self.finished()
                protocol.close_connection()
            return
        if not more:
            protocol.log_access(self.status, self.sent_bytes)
            # Until the client has read (nearly) all of it, the response is
            # in progress: a client dropped for not reading is one that left.
            protocol.outbox.when_sent(self.response_sent)

    def client_behind(self, behind: bool) -> None:
        if self.done or self.reply_channel is None or behind == self.reply_paused:
            return
        self.reply_paused = behind
        self.protocol.server.layer.pause(self.reply_channel, behind)

    def response_sent(self) -> None:
        if not self.done:
            self.finished()
            self.protocol.response_done()

    def conn_state_allows_error(self) -> bool:
        return self.protocol.conn.our_state is h11.SEND_RESPONSE

    def finished(self) -> None:
        """The response is complete or abandoned: nobody needs the rest of
        the body any more, so a chunk waiting to be sent again is dropped."""
        if not self.done:
            # Resumed: a worker still sending goes on (its messages are
            # dropped here) instead of waiting for a client that is gone.
            self.client_behind(False)
            self.done = True
            self.buffer = None
            self.buffered = 0
            if self.retry_call is not None:
                self.retry_call.cancel()
                self.retry_call = None
                self.in_flight = False
                self.sending = None
            if self.reply_channel is not None:
                self.protocol.server.layer.forget(self.reply_channel)

    def abandon(self) -> None:
        """The request ends before its response is complete (an error, or
        the client left). A worker still reading the body is told that no
        more will come, after the chunks it already has, so that it stops
        waiting for them; while the channel is full, that message is tried
        again for up to HTTP_TIMEOUT."""
        if self.done:
            return
        incomplete = self.body_channel is not None and (
            self.buffer is not None or self.sending is not None)
        self.finished()
        if incomplete:
            server = self.protocol.server
            self.closing = True
            self.give_up_at = server.reactor.seconds() + server.config.http_timeout
            if not self.in_flight:
                self.send_closed()

    def client_left(self) -> None:
        """The connection closed before the response was complete."""
        if self.done:
            return
        self.abandon()
        server = self.protocol.server
        if self.reply_channel is not None and server.disconnect_routed:
            server.layer.send("http.disconnect", http_messages.disconnect_message(
                self.reply_channel, self.path))


@implementer(IPushProducer)
class Outbox:
    """The bytes on their way to one HTTP client, and the guard against a
    client that reads them slower than they come.

    Responses arrive as fast as workers send them, whatever the client
    reads. Registered as the transport's producer, the outbox hears when
    the socket's buffer is full and keeps further bytes itself, counted.
    Once more than ``MAX_RESPONSE_BUFFER`` bytes wait, it tells the request
    (``behind(True)``), which pauses its reply channel so that the worker
    waits, until the client has taken them all (``behind(False)``). A
    client that reads nothing for ``WRITE_TIMEOUT`` meanwhile is dropped
    (``stalled`` is called): holding on would pin the connection and the
    worker. Not on size alone, because workers send in bursts: even a
    client that reads at full speed sees a whole response wait here for a
    moment.
    """

    def __init__(self, transport: Any, reactor: Any, config: ServerConfig,
                 stalled: Callable[[], None], behind: Callable[[bool], None]):
        self.transport = transport
        self.reactor = reactor
        self.limit = config.max_response_buffer
        self.timeout = config.write_timeout
        self.stalled = stalled
        self.behind = behind
        self.over_limit = False
        self.held: deque[bytes] = deque()
        self.held_bytes = 0
        self.paused = False
        # Since when the transport's buffer has been full, if it is.
        self.blocked_since: float | None = None
        self.check_call = None
        # Called once nothing is held any more.
        self.waiting: list[Callable[[], None]] = []
        transport.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        if not self.paused and not self.held:
            self.transport.write(data)
            return
        self.held.append(data)
        self.held_bytes += len(data)
        if self.held_bytes > self.limit:
            if not self.over_limit:
                self.over_limit = True
                self.behind(True)
            if self.check_call is None:
                self.schedule_check()

    def when_sent(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything written so far is in the
        transport's hands: at once, unless the client is behind."""
        if self.held:
            self.waiting.append(callback)
        else:
            callback()

    def close(self) -> None:
        """Close the connection once everything written has been sent."""
        self.when_sent(self._close_now)

    def _close_now(self) -> None:
        self.release()
        self.transport.loseConnection()

    def release(self) -> None:
        """Hand everything held to the transport and stop being its
        producer: Twisted does not close a transport that has one, and a
        WebSocket protocol taking the socket over registers its own."""
        while self.held:
            self.transport.write(self.held.popleft())
        self.discard()
        self.paused, self.blocked_since = False, None
        self.transport.unregisterProducer()

    def discard(self) -> None:
        """Forget what waits: the connection is gone or going (and its
        request, which resumes its channel if it paused it)."""
        self.held.clear()
        self.held_bytes = 0
        self.over_limit = False
        self.waiting = []
        if self.check_call is not None:
            if self.check_call.active():
                self.check_call.cancel()
            self.check_call = None

    def schedule_check(self) -> None:
        waited = self.reactor.seconds() - self.blocked_since
        self.check_call = self.reactor.callLater(max(self.timeout - waited, 0), self.check)

    def check(self) -> None:
        self.check_call = None
        if self.held_bytes <= self.limit or self.blocked_since is None:
            return  # caught up; the next write over the limit checks again
        if self.reactor.seconds() - self.blocked_since >= self.timeout:
            self.discard()
            self.stalled()
        else:
            self.schedule_check()  # it read meanwhile, and is blocked again

    # IPushProducer: the transport's flow control.

    def pauseProducing(self) -> None:
        self.paused = True
        if self.blocked_since is None:
            self.blocked_since = self.reactor.seconds()

    def resumeProducing(self) -> None:
        """The client read all the transport had: hand it what waits here,
        until its buffer is full again."""
        self.paused = False
        self.blocked_since = None
        while self.held and not self.paused:
            data = self.held.popleft()
            self.held_bytes -= len(data)
            self.transport.write(data)
        if not self.held:
            if self.over_limit:
                self.over_limit = False
                self.behind(False)
            waiting, self.waiting = self.waiting, []
            for callback in waiting:
                callback()

    def stopProducing(self) -> None:
        self.discard()
