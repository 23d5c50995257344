"""What an idle WebSocket costs its server: pings, and keepalives if asked.

Both are per socket and periodic, and both are driven by one timer for the
whole process instead of a timer per socket, so that the cost of a socket
that says nothing is a few set operations per interval.

``PingSweep``: WebSocket pings find dead peers and keep proxies (whose
idle timeouts close silent connections) from closing idle sockets.
``KeepaliveScheduler``: ``websocket.keepalive`` every half channel EXPIRY
(``WEBSOCKET_KEEPALIVE``), for consumers that renew something per socket.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.internet.task import LoopingCall

TICK = 1.0

# A ping as the server sends it: FIN, opcode 9, unmasked, no payload. Any
# pong, any frame even, shows the peer alive, so the ping need carry nothing
# to match its pong against.
PING_FRAME = b"\x89\x00"
# The start of a pong as a client answers that ping: FIN, opcode 10, masked,
# no payload; the four bytes of its mask follow.
PONG_START = b"\x8a\x80"
PONG_LENGTH = 6
# The sweep's tick: pings due within one tick are sent together.
PING_TICK = 0.25
MAX_SLOTS = 1024


class Pinged(Protocol):
    """What ``PingSweep`` needs of a socket. ``heard`` is the sweep's
    ``now`` when the socket last read anything from its peer; the socket
    sets it, the sweep only reads it (and sets it once, on ``add``)."""

    heard: int
    transport: Any

    def ping(self, direct: bool) -> None: ...

    def ping_timed_out(self) -> bool: ...


class PingSweep:
    """WebSocket pings for every open socket of a process, from one timer.

    Autobahn's own pings (``autoPingInterval``) cost each socket two timers
    per interval, random bytes, a frame built and one matched per pong: about
    100 µs of the server's CPU per ping. Here one ``LoopingCall`` ticks
    every ``PING_TICK`` over a wheel of slots; a socket sits in the slot of
    the tick at which it is next looked at, which is

    - ``interval`` after it was last heard from (``heard``): any data from
      the peer shows it alive, so a socket that talks is never pinged;
    - ``timeout`` after its ping, when the ping is still unanswered: it is
      then dropped (``ping_timed_out``). A dead peer is thus dropped within
      ``interval`` + ``timeout`` of its last word, as with Autobahn's, and
      a peer that answers is pinged every ``interval``.

    A ping is a prebuilt two-byte frame, sent straight to the socket when
    Twisted holds nothing unsent for it (``direct``), and its pong is
    recognised by the socket before Autobahn parses anything. New sockets
    are dealt round-robin over the ticks of one interval, so that sockets
    opened in a burst are not pinged in a burst every interval after.
    ``timeout`` 0 pings without ever dropping.
    """

    def __init__(self, clock: Any, interval: float, timeout: float,
                 writers: Callable[[], Iterable[Any]] | None = None, tick: float = PING_TICK):
        self.enabled = interval > 0
        steps = [interval, tick] + ([timeout] if timeout > 0 else [])
        self.tick = min(step for step in steps if step > 0) if self.enabled else tick
        # Long intervals get longer ticks, not more slots.
        self.tick = max(self.tick, max(interval, timeout) / MAX_SLOTS)
        self.interval = max(1, round(interval / self.tick))
        self.timeout = max(1, round(timeout / self.tick)) if timeout > 0 else 0
        self.slots: list[set] = [set() for _ in range(max(self.interval, self.timeout) + 1)]
        # Ticks since the start; where each socket is (the tick it is next
        # looked at), and when the pings not yet answered went.
        self.now = 0
        self.due: dict[Any, int] = {}
        self.pinged: dict[Any, int] = {}
        self.dealt = 0
        self.catching_up = False
        # The transports that Twisted holds unsent bytes for (those it
        # watches for writability): a ping must queue behind their bytes.
        self.writers = writers
        self.busy: set | None = None
        self.loop = LoopingCall.withCount(self.sweep)
        self.loop.clock = clock

    def start(self) -> None:
        if self.enabled and not self.loop.running:
            self.loop.start(self.tick, now=False)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def add(self, connection: Pinged) -> None:
        if not self.enabled:
            return
        first = self.now + 1 + self.dealt % self.interval
        self.dealt += 1
        # As if last heard just long enough ago for its first ping to fall
        # on the tick it was dealt.
        connection.heard = first - self.interval
        self.place(connection, first)

    def discard(self, connection: Pinged) -> None:
        tick = self.due.pop(connection, None)
        if tick is not None:
            self.slots[tick % len(self.slots)].discard(connection)
            self.pinged.pop(connection, None)

    def place(self, connection: Pinged, tick: int) -> None:
        self.slots[tick % len(self.slots)].add(connection)
        self.due[connection] = tick

    def sweep(self, count: int = 1) -> None:
        """Look at the sockets due in the ``count`` ticks since the last
        sweep: more than one if the reactor was held up, and then a socket
        in a slot that was skipped is looked at late, never early, and none
        is dropped before the reactor has read what came meanwhile (their
        pongs may wait unread)."""
        size = len(self.slots)
        if count > size:
            self.now += count - size
            count = size
        self.catching_up = count > 1
        for _ in range(count):
            self.now += 1
            index = self.now % size
            slot = self.slots[index]
            if not slot:
                continue
            self.slots[index] = set()
            self.busy = None
            for connection in slot:
                if connection in self.due:  # not closed meanwhile
                    self.look_at(connection)

    def direct(self, connection: Pinged) -> bool:
        """Whether nothing of ``connection`` waits in Twisted, so that its
        ping may go straight to the socket (asked once per slot, and only
        if a ping is due: during a broadcast every socket is writing)."""
        if self.writers is None:
            return False
        if self.busy is None:
            self.busy = set(self.writers())
        return connection.transport not in self.busy

    def look_at(self, connection: Pinged) -> None:
        now = self.now
        sent = self.pinged.get(connection)
        if sent is not None:
            if connection.heard >= sent or not self.timeout:
                del self.pinged[connection]  # answered, or never dropped
            elif now < sent + self.timeout or self.catching_up:
                self.place(connection, max(sent + self.timeout, now + 1))
                return
            elif connection.ping_timed_out():
                self.pinged.pop(connection, None)
                self.due.pop(connection, None)
                return
            else:
                # The server stopped reading it, so it could not be heard:
                # as good as heard.
                del self.pinged[connection]
                connection.heard = now
        due = connection.heard + self.interval
        if due > now:
            self.place(connection, due)
            return
        connection.ping(self.direct(connection))
        self.pinged[connection] = now
        # Looked at again when the next ping would be due if this one is
        # answered at once, or at its deadline if that comes first.
        self.place(connection, now + min(self.interval, self.timeout or self.interval))


class KeepaliveScheduler:
    """``websocket.keepalive`` for every open socket, every ``interval``
    (half channel EXPIRY).

    Consumers re-add sockets to their groups on keepalive before membership
    expires. Sending them all at once would put a burst of N messages on the
    layer every interval, so sockets are dealt round-robin into buckets, one
    bucket per tick, and each tick sends one bucket's keepalives: the load
    is flat and a tick costs only its bucket.
    """

    def __init__(self, reactor: Any, interval: float):
        self.tick = min(TICK, interval)
        self.buckets: list[set] = [set() for _ in range(max(1, math.ceil(interval / self.tick)))]
        self.next_bucket = 0  # where the next socket is dealt
        self.current = 0  # the bucket the next tick sends
        self.where: dict[Any, int] = {}
        self.loop = LoopingCall(self.send_bucket)
        self.loop.clock = reactor

    def start(self) -> None:
        self.loop.start(self.tick, now=False)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def add(self, connection: Any) -> None:
        index = self.next_bucket
        self.next_bucket = (index + 1) % len(self.buckets)
        self.buckets[index].add(connection)
        self.where[connection] = index

    def discard(self, connection: Any) -> None:
        index = self.where.pop(connection, None)
        if index is not None:
            self.buckets[index].discard(connection)

    def send_bucket(self) -> None:
        bucket = self.buckets[self.current]
        self.current = (self.current + 1) % len(self.buckets)
        for connection in list(bucket):
            connection.keepalive()
