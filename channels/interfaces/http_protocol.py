"""HTTP/1.1 on one connection, parsed by h11, and the switch to WebSocket.

Every connection starts here. Requests become ``http.request`` messages
(bodies over one chunk follow on a body channel as they arrive, so a 20 MB
upload never sits in memory whole); response messages are written as they
come, chunked when they stream. An upgrade request on any path hands the
socket to the WebSocket protocol, and this object is dropped: an idle
WebSocket carries no HTTP state.

One timer at a time watches the client or the worker, whichever is awaited:
the request head (408), a body that stalls (408), the response (504), or an
idle keep-alive connection (closed). The request in progress, its body and
its response are a ``Request`` (``channels.interfaces.http_request``);
response bytes go out through an ``Outbox`` (``channels.interfaces.outbox``),
which drops a client that stops reading them.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import h11
from twisted.internet.protocol import Protocol

from channels.interfaces import metrics as server_metrics
from channels.interfaces.http_request import Request
from channels.interfaces.outbox import Outbox
from channels.interfaces.request_head import read_head, refusal
from channels.interfaces.security import BadProxyHeader, forwarded_client, forwarded_secure
from channels.interfaces.simple_http import SimpleRequest, read_simple, write_simple
from channels.interfaces.static_files import StaticResponse
from channels.interfaces.websocket_protocol import ChannelWebSocketProtocol
from channels.messages import http as http_messages
from channels.messages.http import ResponseStart

if TYPE_CHECKING:
    from channels.interfaces.server import ChannelServer

logger = logging.getLogger("channels.server")

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


def reason_phrase(status: int) -> bytes:
    try:
        return HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


class HttpProtocol(Protocol):
    def __init__(self, server: ChannelServer):
        self.server = server
        # None while the connection needs no h11 (see ``conn``).
        self._conn: h11.Connection | None = None
        # The head of a request read by ``read_simple``, until its cycle ends.
        self.simple_head: bytes | None = None
        self.timer = None
        self.timer_callback = None
        self.request: Request | None = None
        # Reading paused: a pipelined request waits for the current response.
        self.paused = False
        # Reading paused: the request body waits for its channel to take it.
        self.throttled = False
        self.reading = True
        self.idle = False
        self.lingering = False
        self.outbox: Outbox | None = None
        self.peer_host: str | None = None

    def connectionMade(self) -> None:
        server = self.server
        self.client = _address(self.transport.getPeer())
        self.local = _address(self.transport.getHost())
        self.secure = False
        refused = server.connection_opened(self, self.client[0] if self.client else None)
        if refused is not None:
            self.transport.write(
                b"HTTP/1.1 %d %s\r\nRetry-After: 1\r\nConnection: close\r\n"
                b"Content-Length: 0\r\n\r\n" % (refused, reason_phrase(refused)))
            self.transport.loseConnection()
            self.log_access(refused, 0)
            return
        config = server.config
        self.outbox = Outbox(self.transport, server.reactor, config.max_response_buffer,
                             config.write_timeout, self.drop_slow_reader, self.client_behind)
        # Idle until the first byte: a connection that never says anything
        # is closed without an answer.
        self.idle = True
        self.set_timer(server.config.header_timeout, self.timed_out)

    @property
    def conn(self) -> h11.Connection:
        """The h11 connection, made when first needed. Between requests, and
        during the simple exchange of ``channels.interfaces.simple_http``,
        there is none: it would be in a state that its bytes so far bring a
        new one to, and is brought there (the head read again) when anything
        asks for it."""
        conn = self._conn
        if conn is None:
            conn = self._conn = h11.Connection(
                h11.SERVER, max_incomplete_event_size=self.server.config.max_header_size)
            head, self.simple_head = self.simple_head, None
            if head is not None:
                conn.receive_data(head)
                if type(conn.next_event()) is not h11.Request or (
                        type(conn.next_event()) is not h11.EndOfMessage):
                    raise AssertionError("h11 reads a simple request otherwise")
        return conn

    # Timers.

    def set_timer(self, delay: float, callback) -> None:
        """Call ``callback`` in ``delay`` seconds (none if 0), instead of
        what the timer would call. A request moves its timer on several
        times, each time later (head, body, response): a running timer is
        then moved, which Twisted does in an assignment, where cancelling it
        and adding another cost a heap operation each."""
        if delay <= 0:
            self.cancel_timer()
            return
        self.timer_callback = callback
        timer = self.timer
        if timer is not None and timer.active():
            reactor = self.server.reactor
            if timer.getTime() <= reactor.seconds() + delay:
                timer.reset(delay)
                return
            timer.cancel()
        self.timer = self.server.reactor.callLater(delay, self.timer_fired)

    def timer_fired(self) -> None:
        self.timer = None
        self.timer_callback()

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
        elif self.request is not None and self.request.body_kept_pace():
            self.set_timer(self.server.config.body_timeout, self.timed_out)
        else:
            self.send_error(408, "Request timeout")

    # Incoming bytes.

    def dataReceived(self, data: bytes) -> None:
        if self.lingering:
            return  # the rest of a body nobody reads
        if self._conn is None and self.simple_head is None:
            # At a request's start, with nothing buffered.
            request = read_simple(data)
            if request is not None:
                self.idle = False
                self.simple_head = data
                if self.start_request(request):
                    # As process() goes on at its EndOfMessage: the body,
                    # empty, is complete.
                    current = self.request
                    if current.static is not None:
                        current.static.start()
                    else:
                        current.body_received(b"", end=True)
                return
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
                    if request.static is not None:
                        # Answered here; response_done() reads on.
                        request.static.start()
                        return
                    request.body_received(b"", end=True)
            elif isinstance(event, h11.ConnectionClosed):
                return

    def start_request(self, event: h11.Request | SimpleRequest) -> bool:
        config = self.server.config
        headers = list(event.headers)
        request = Request(self, event, headers, self.client, self.secure)
        self.request = request
        if self.server.stopping:
            # Arrived after the server was told to stop: not started, so
            # safe for the client to send again, elsewhere.
            self.send_error(503, "Server shutting down", retry_after=True)
            return False
        head = read_head(event, headers)
        refused = refusal(event, head, config, self.server.policy)
        if refused is None and config.proxy_headers:
            try:
                self.trust_proxy(request)
            except BadProxyHeader as exc:
                logger.warning("Bad proxy header from %s: %s", self.client[0], exc)
                refused = (400, "Bad proxy header")
        if refused is not None:
            self.send_error(*refused)
            return False
        if head.upgrade:
            request.upgrade = True
            return True
        static_files = self.server.static_files
        if static_files is not None and not head.length and not head.chunked:
            static_file = static_files.find(event, config.root_path)
            if static_file is not None:
                request.static = StaticResponse.open(self, request, static_file)
                if request.static is not None:
                    return True
        if self._conn is not None and self._conn.client_is_waiting_for_100_continue:
            self.write(h11.InformationalResponse(status_code=100, headers=[],
                                                 reason=b"Continue"))
        self.set_timer(config.body_timeout, self.timed_out)
        request.body_window_started()
        return True

    def trust_proxy(self, request: Request) -> None:
        """The client's address and scheme from the X-Forwarded-* headers
        (repeated ones read as one list). Raises BadProxyHeader."""
        wanted: dict[str, str] = {}
        for name, value in request.headers:
            if name.startswith(b"x-forwarded-"):
                key = name.decode("latin-1")
                text = value.decode("latin-1")
                wanted[key] = f"{wanted[key]}, {text}" if key in wanted else text
        request.client = forwarded_client(wanted, request.client)
        request.secure = forwarded_secure(wanted, request.secure)

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
                self.write(h11.Response(status_code=status, headers=headers,
                                        reason=reason_phrase(status)))
                self.write(h11.Data(data=body))
                self.write(h11.EndOfMessage())
            except h11.LocalProtocolError:
                pass  # a response is already under way: nothing to answer
            else:
                self.log_access(status, len(body))
        self.close_connection()

    def write(self, event) -> None:
        data = self.conn.send(event)
        if data:
            self.outbox.write(data)
        if type(event) is h11.Response:
            self.response_started()

    def write_simple(self, start: ResponseStart, method: bytes) -> bool:
        """Write a complete response without h11 if the exchange is still the
        simple one and the response simple too; whether it was. Only when
        nothing waits in the outbox, so that the response is handed over
        and done (``response_done``) before anything can ask for ``conn``."""
        outbox = self.outbox
        if (self._conn is not None or self.simple_head is None or outbox.paused or outbox.held
                or self.server.stopping):
            return False
        data = write_simple(start, method)
        if data is None:
            return False
        outbox.write(data)
        self.response_started()
        return True

    def response_started(self) -> None:
        if server_metrics.active is not None:
            # A response starts: a worker's, an error's or a static file's.
            request = self.request
            if request is not None:
                server_metrics.active.request_duration.observe(
                    self.server.reactor.seconds() - request.received_at)

    def close_connection(self) -> None:
        """Close once what was written has been sent (see LINGER for a
        client still sending a body)."""
        self.cancel_timer()
        if self.conn.their_state in (h11.SEND_BODY, h11.ERROR):
            # A body, or a head h11 could not read, may still be coming.
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

    # Shutdown (see ChannelServer.shutdown).

    def server_stopping(self) -> None:
        """The server stops: an idle connection closes now. A request in
        progress goes on until it is answered or ``cut_off``; a request
        whose head is still arriving gets 503 (``start_request``)."""
        if self.idle:
            self.close_connection()

    def cut_off(self) -> None:
        """SHUTDOWN_TIMEOUT has passed with this connection still open."""
        if self.request is not None:
            self.request.cut_off()
        elif not self.lingering:  # a lingering one was answered; it ends soon
            self.send_error(503, "Server shutting down", retry_after=True)

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
        """One line per answer, also to a request whose head could not be
        read (a parse error, a head too large or too slow): then "-". Each
        answer is counted here too (channels_http_responses_total)."""
        if server_metrics.active is not None:
            server_metrics.active.responses[status] += 1
        access_log = self.server.access_log
        if access_log is None:
            return
        request = self.request
        if request is not None:
            access_log.log(request.client, request.event.method, request.event.target,
                           request.event.http_version, status, size)
        else:
            access_log.log(self.client, None, b"", b"", status, size)

    def response_done(self) -> None:
        """The response is complete: next request, or close."""
        self.request = None
        conn = self._conn
        if conn is None:
            # The simple exchange, answered by write_simple: keep-alive.
            self.simple_head = None
            if self.server.stopping:
                self.cancel_timer()
                self.outbox.close()
                return
        elif (conn.our_state is h11.MUST_CLOSE or conn.their_state is not h11.DONE
                or self.server.stopping):
            self.close_connection()
            return
        else:
            conn.start_next_cycle()
            if conn.trailing_data == (b"", False):
                self._conn = None  # the next request may be a simple one
        self.idle = True
        self.set_timer(self.server.config.keepalive_timeout, self.timed_out)
        self.paused = self.throttled = False
        self.update_reading()
        if self._conn is not None:
            self.process()

    def connectionLost(self, reason=None) -> None:
        self.cancel_timer()
        if self.outbox is not None:
            self.outbox.discard()
        if self.request is not None:
            self.request.client_left()
            self.request = None
        self.server.connection_closed(self)
