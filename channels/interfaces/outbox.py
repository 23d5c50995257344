"""The bytes on their way to one client, HTTP or WebSocket, and the guard
against a client that reads them slower than they come (see ``Outbox``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer

from channels.direct_write import write_now


@implementer(IPushProducer)
class Outbox:
    """The bytes on their way to one client, and the guard against a
    client that reads them slower than they come.

    Responses and WebSocket messages arrive as fast as workers send them,
    whatever the client reads. Registered as the transport's producer, the
    outbox hears when the socket's buffer is full and keeps further bytes
    itself, counted. Once more than ``limit`` bytes wait
    (``MAX_RESPONSE_BUFFER`` for HTTP, ``MAX_WEBSOCKET_BUFFER`` for a
    WebSocket), it tells its owner (``behind(True)``), which pauses the
    reply channel so that the worker waits, until the client has taken them
    all (``behind(False)``). A client that reads nothing for ``timeout``
    (``WRITE_TIMEOUT``) meanwhile is given up on (``stalled`` is called,
    after what waits is dropped): holding on would pin the connection, the
    worker and the memory. Not on size alone, because workers send in
    bursts: even a client that reads at full speed sees a whole response
    wait here for a moment.

    With ``hard_limit``, a client with more than that waiting is given up
    on at once: the pause did not hold the workers back, since what they
    sent before it took effect (up to the reply channel's capacity) arrives
    all the same. An HTTP response needs none: its reply channel holds a
    few chunks at most.
    """

    # One per connection: slots keep an idle one small.
    __slots__ = ("transport", "reactor", "limit", "hard_limit", "timeout", "stalled", "behind",
                 "over_limit", "held", "held_bytes", "paused", "blocked_since", "check_call",
                 "waiting")

    def __init__(self, transport: Any, reactor: Any, limit: int, timeout: float,
                 stalled: Callable[[], None], behind: Callable[[bool], None],
                 hard_limit: int | None = None):
        self.transport = transport
        self.reactor = reactor
        self.limit = limit
        self.hard_limit = hard_limit
        self.timeout = timeout
        self.stalled = stalled
        self.behind = behind
        self.over_limit = False
        # A deque only while something waits: its first block, some 600
        # bytes, would otherwise stay with every idle connection.
        self.held: deque[bytes] | tuple[()] = ()
        self.held_bytes = 0
        self.paused = False
        # Since when the transport's buffer has been full, if it is.
        self.blocked_since: float | None = None
        self.check_call = None
        # Called once nothing is held any more (a list once there is one).
        self.waiting: list[Callable[[], None]] | tuple[()] = ()
        transport.registerProducer(self, True)

    def write(self, data: bytes) -> None:
        if not self.paused and not self.held:
            # Straight to the socket if Twisted holds nothing for it.
            write_now(self.transport, data)
            return
        if not self.held:
            self.held = deque()
        self.held.append(data)
        self.held_bytes += len(data)
        if self.hard_limit is not None and self.held_bytes > self.hard_limit:
            self.discard()
            self.stalled()
        elif self.held_bytes > self.limit:
            if not self.over_limit:
                self.over_limit = True
                self.behind(True)
            if self.check_call is None:
                self.schedule_check()

    def when_sent(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once everything written so far is in the
        transport's hands: at once, unless the client is behind."""
        if self.held:
            if not self.waiting:
                self.waiting = []
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
        self.held = ()
        self.held_bytes = 0
        self.over_limit = False
        self.waiting = ()
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
            self.held = ()
            if self.over_limit:
                self.over_limit = False
                self.behind(False)
            waiting, self.waiting = self.waiting, ()
            for callback in waiting:
                callback()

    def stopProducing(self) -> None:
        self.discard()
