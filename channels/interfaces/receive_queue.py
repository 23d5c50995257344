"""What one WebSocket says, on its way to the shared ``websocket.receive``
channel: the fairness of one connection towards the others.

``websocket.receive`` is one channel for every socket of every server, and
when it is full every sender is refused. A socket that sends faster than
the workers take its messages must therefore be slowed before it fills the
channel, and only it must pay when it persists. So each socket has at most
``MAX_MESSAGES_IN_FLIGHT`` messages *in flight*: handed to the layer and
not yet answered by it (taken into the channel or refused). What it sends
past that waits here, and the server stops reading its socket (TCP
backpressure: the client's writes block) until its messages are taken.
A socket gets at most that many messages into each batch the bridge sends,
however many it sends in one burst, and the others' messages travel in the
same batches.

A refused message (the channel is full) ends the socket with 1013 only if
the socket was over its share: it had more to send than its messages in
flight when the refusal came, that is, it sends faster than the layer
takes. A socket within its share, refused because the channel is full
(of another socket's messages, or because the workers are behind), is not
closed: its message is sent again, in order, until the channel takes it,
meanwhile the socket is read no further than its share allows. Only if no
worker makes room for ``HTTP_TIMEOUT`` is it closed with 1013 too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from channels.exceptions import ChannelFull
from channels.interfaces.http_request import RETRY_FIRST, RETRY_MAX
from channels.messages import websocket as websocket_messages

# (order, payload, is_binary) of one message of the socket.
Said = tuple[int, bytes, bool]


class ReceiveQueue:
    """The messages of one socket not yet taken by the layer (see the
    module's docstring). ``set_reading(False)`` asks the protocol to stop
    reading its socket, ``set_reading(True)`` to read again; ``give_up`` is
    called once, with the exception of the refusal that ends the socket."""

    # One per socket: slots keep an idle one small.
    __slots__ = ("server", "limit", "reply_channel", "path", "set_reading", "give_up", "waiting",
                 "refused", "in_flight", "over_share", "retry_call", "delay", "refused_since",
                 "reading", "closed")

    def __init__(self, server: Any, reply_channel: str, path: str,
                 set_reading: Callable[[bool], None], give_up: Callable[[Exception], None]):
        self.server = server
        self.limit = server.config.max_messages_in_flight
        self.reply_channel = reply_channel
        self.path = path
        self.set_reading = set_reading
        self.give_up = give_up
        # Not yet handed to the layer, in order; and those the layer
        # refused, to be sent again before them. A deque only while
        # something waits: its first block, some 600 bytes, would
        # otherwise stay with every idle socket.
        self.waiting: deque[Said] | tuple[()] = ()
        self.refused: list[Said] | tuple[()] = ()
        self.in_flight = 0
        # Messages waited here while its share was in flight, with no
        # refusal being retried: the socket sends faster than the layer
        # takes. Cleared once all it said has been taken.
        self.over_share = False
        self.retry_call = None
        self.delay = RETRY_FIRST
        self.refused_since: float | None = None
        self.reading = True
        self.closed = False

    def add(self, order: int, payload: bytes, binary: bool) -> None:
        if self.closed:
            return
        said = (order, payload, binary)
        if self.waiting:
            self.waiting.append(said)
        elif self.in_flight < self.limit and self.retry_call is None:
            self.send(said)  # as pump() would at once
        else:
            self.waiting = deque((said,))
        self.pump()

    def pump(self) -> None:
        """Hand over what waits, as far as the share allows, and read the
        socket only while there is room for more."""
        while self.waiting and self.in_flight < self.limit and self.retry_call is None:
            self.send(self.waiting.popleft())
        if not self.waiting:
            self.waiting = ()
        elif self.retry_call is None:
            self.over_share = True
        reading = self.in_flight + len(self.waiting) + len(self.refused) < self.limit
        if reading is not self.reading:
            self.reading = reading
            self.set_reading(reading)

    def send(self, said: Said) -> None:
        order, payload, binary = said
        self.in_flight += 1
        message = websocket_messages.receive_message(
            self.reply_channel, self.path, order, payload, binary)
        self.server.layer.send("websocket.receive", message,
                               lambda exc: self.was_refused(said, exc), self.was_taken)

    def was_taken(self) -> None:
        self.in_flight -= 1
        if self.closed:
            return
        if self.retry_call is None and not self.refused:
            self.delay = RETRY_FIRST
            self.refused_since = None
        if not (self.in_flight or self.waiting or self.refused):
            self.over_share = False
        self.pump()

    def was_refused(self, said: Said, exc: Exception) -> None:
        self.in_flight -= 1
        if self.closed:
            return
        now = self.server.reactor.seconds()
        if self.refused_since is None:
            self.refused_since = now
        if (not isinstance(exc, ChannelFull) or self.over_share
                or now - self.refused_since >= self.server.config.http_timeout):
            self.close()
            self.give_up(exc)
            return
        # Within its share: wait for room, keeping the socket's order.
        if not self.refused:
            self.refused = []
        self.refused.append(said)
        if self.retry_call is None:
            self.retry_call = self.server.reactor.callLater(self.delay, self.retry)
            self.delay = min(self.delay * 2, RETRY_MAX)
        self.pump()

    def retry(self) -> None:
        self.retry_call = None
        waiting = deque(sorted(self.refused))
        waiting.extend(self.waiting)
        self.waiting = waiting
        self.refused = ()
        self.pump()

    def close(self) -> None:
        """The socket is closing: nothing more is sent, and it is read
        again, so that the client's answer to the close is heard."""
        self.closed = True
        self.waiting = ()
        self.refused = ()
        if self.retry_call is not None:
            if self.retry_call.active():
                self.retry_call.cancel()
            self.retry_call = None
        if not self.reading:
            self.reading = True
            self.set_reading(True)
