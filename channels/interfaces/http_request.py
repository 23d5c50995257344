"""One HTTP request on a connection, from its head to the end of its
response: the body handed to the layer a chunk at a time, as fast as the
view takes it; the response written as its messages come; and the client
or the worker told when the other side gives up.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import h11

from channels.exceptions import ChannelFull
from channels.messages import http as http_messages
from channels.names import HTTP_REPLY_PREFIX

if TYPE_CHECKING:
    from channels.interfaces.http_protocol import HttpProtocol
    from channels.interfaces.static_files import StaticResponse

logger = logging.getLogger("channels.server")

# A body chunk refused because its channel is full is sent again after
# RETRY_FIRST seconds, then after twice as long each time, up to RETRY_MAX:
# quick when a view reads steadily, a few sends a second when it does not.
RETRY_FIRST = 0.01
RETRY_MAX = 0.25


class Request:
    """One request and its response, on one HTTP connection."""

    def __init__(self, protocol: HttpProtocol, event: h11.Request,
                 headers: list[tuple[bytes, bytes]], client: list | None, secure: bool):
        self.protocol = protocol
        self.event = event
        # When its head was read: channels_http_request_duration_seconds.
        self.received_at = protocol.server.reactor.seconds()
        self.headers = headers
        self.client = client
        self.secure = secure
        self.upgrade = False
        # A static file the server answers itself (StaticResponse), if any.
        self.static: StaticResponse | None = None
        # Body bytes received and not yet handed to the layer.
        self.body = http_messages.BodyBuffer()
        self.received = 0
        self.window_start = 0
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
        # The whole response is written (it may still be on its way).
        self.complete = False
        self.sent_bytes = 0
        self.status = 0
        self.done = False

    def body_window_started(self) -> None:
        """A BODY_TIMEOUT window begins (the body timer is armed): by its
        end the client must have sent MIN_BODY_RATE bytes per second of it."""
        self.window_start = self.received

    def body_kept_pace(self) -> bool:
        """At the end of a window: whether the client sent enough during it
        (then the next window begins). Not every byte restarts the timer,
        or a byte every few seconds would hold the connection for ever."""
        config = self.protocol.server.config
        needed = max(1, int(config.min_body_rate * config.body_timeout))
        if self.received - self.window_start < needed:
            return False
        self.body_window_started()
        return True

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
        self.body.add(data, end)
        if end:
            protocol.set_timer(config.http_timeout, self.response_timed_out)
        self.send_next()

    def send_next(self) -> None:
        """Hand the layer the next message of this request once the one
        before has been taken: ``http.request``, then each body chunk (whole
        chunks; at the end, the rest, maybe empty, as the last). One at a
        time, so that no chunk can overtake one that its full channel
        refused. While a whole chunk waits behind it the client is not read
        from, which holds an upload to the pace of the view that reads it
        with at most about two chunks of it in this process; and the client
        is not timed meanwhile, since it is waiting for us."""
        body = self.body
        if not self.in_flight:
            if self.reply_channel is None:
                if body.first_ready:
                    self.send_request()
            else:
                message = body.next_message()
                if message is not None:
                    self.send_body(message)
        hold = self.in_flight and body.chunk_waiting
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
        refusal = server.liveness.refusal("http.request")
        if refusal is not None:
            protocol.send_error(503, refusal, retry_after=True)
            return
        self.reply_channel = server.layer.new_reply_channel(HTTP_REPLY_PREFIX, self.on_reply,
                                                            self.inbox_lost)
        server.liveness.watch(self.reply_channel, self)
        body, more = self.body.first_chunk()
        if more:
            self.body_channel = server.new_body_channel()
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
        if self.body.complete:
            protocol.set_timer(config.http_timeout, self.response_timed_out)
        else:
            protocol.set_timer(config.body_timeout, protocol.timed_out)
            self.body_window_started()

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

    # What the heartbeats tell (channels.interfaces.liveness).

    def waiting_on(self) -> str | None:
        return "http.request" if not (self.response_started or self.done) else None

    def worker_lost(self, channel: str, reason: str) -> None:
        """The ``http.request`` message will never be answered, or answered
        further: a 503, or the end of a response cut off halfway."""
        if channel != "http.request" or self.done:
            return
        if not self.response_started:
            self.protocol.send_error(503, reason, retry_after=True)
            return
        logger.warning("The response on %s stopped halfway: %s", self.reply_channel, reason)
        self.finished()
        self.protocol.close_connection()

    def inbox_lost(self) -> None:
        """The response can no longer arrive: the inbox of its reply
        channel cannot be read (``channels.interfaces.layer``). A 503, or a
        response cut off halfway; a worker that has not taken the request
        yet skips it."""
        if self.done:
            return
        if not self.response_started:
            self.protocol.server.liveness.cancel(self.reply_channel)
            self.protocol.send_error(503, "Channel layer unavailable", retry_after=True)
            return
        self.finished()
        self.protocol.close_connection()

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
                if protocol.write_simple(start, self.event.method):
                    if self.event.method != b"HEAD":
                        self.sent_bytes = len(start.content)
                    self.response_written()
                    return
                headers = start.headers
                if not start.more_content and not any(
                        name.lower() in (b"content-length", b"transfer-encoding")
                        for name, _ in headers):
                    headers = [*headers, (b"content-length", str(len(start.content)).encode())]
                if protocol.server.stopping:
                    # The connection closes after it: the client must not
                    # send another request on it.
                    headers = [*headers, (b"connection", b"close")]
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
            self.response_written()

    def response_written(self) -> None:
        self.complete = True
        protocol = self.protocol
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
            self.body.drop()
            if self.static is not None:
                self.static.close()
            if self.retry_call is not None:
                self.retry_call.cancel()
                self.retry_call = None
                self.in_flight = False
                self.sending = None
            if self.reply_channel is not None:
                server = self.protocol.server
                server.layer.forget(self.reply_channel)
                server.liveness.unwatch(self.reply_channel)

    def abandon(self) -> None:
        """The request ends before its response is complete (an error, or
        the client left). A worker still reading the body is told that no
        more will come, after the chunks it already has, so that it stops
        waiting for them; while the channel is full, that message is tried
        again for up to HTTP_TIMEOUT."""
        if self.done:
            return
        incomplete = self.body_channel is not None and (
            not self.body.exhausted or self.sending is not None)
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
        self.send_disconnect()

    def cut_off(self) -> None:
        """The server is stopping and SHUTDOWN_TIMEOUT has passed. A
        response not started yet is replaced by a 503 with ``Connection:
        close``. One under way cannot be replaced: the connection closes
        with it unfinished, never with a last chunk that would pass it off
        as whole, so the client sees it is incomplete (a chunked body
        without its last chunk, or fewer bytes than its Content-Length).
        Either way the worker gets ``http.disconnect``, as when a client
        leaves. A response written whole is left to reach its client."""
        if self.done or self.complete:
            return
        self.protocol.send_error(503, "Server shutting down", retry_after=True)
        self.send_disconnect()

    def send_disconnect(self) -> None:
        server = self.protocol.server
        if self.reply_channel is not None and server.disconnect_routed:
            server.layer.send("http.disconnect", http_messages.disconnect_message(
                self.reply_channel, self.path))
