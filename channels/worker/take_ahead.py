"""How many waiting messages a worker takes in one receive.

Each receive from a networked backend is a round trip, as is each flush of
the replies its consumers sent (``channels.backends.outgoing``), and for
short consumers the round trips cost more than the consumers: the more a
receive takes, the fewer there are (docs/benchmarks.rst, "Taking ahead by
time"). Messages only wait on a channel when no worker is idle on it, so
taking them ahead starves nobody, unless the consumers run long: then the
messages taken ahead wait for them while another worker may be free. So a
worker takes no more than it expects to run in ``TAKE_AHEAD`` seconds,
judged by how long its recent messages took: a WebSocket echo up to
``PREFETCH`` at a time, a small Django view about eight, a view of
``TAKE_AHEAD`` or more one at a time. (A consumer that runs long all the
same gives back what was taken ahead of it: ``Worker.release_after``.)
"""

from __future__ import annotations

# The most one receive takes (runworker --prefetch).
PREFETCH = 64
# Seconds of work a receive may take ahead.
TAKE_AHEAD = 0.002
# How far each batch moves the estimate of time per message toward its own.
LEARNING_RATE = 0.25
# What a worker takes until it has seen messages run.
FIRST_TAKE = 8


class TakeAhead:
    """One worker's estimate of its time per message, and what it makes of
    it. Used by the worker's own thread only."""

    seconds = TAKE_AHEAD

    def __init__(self, most: int = PREFETCH, seconds: float | None = None):
        self.most = most
        if seconds is not None:
            self.seconds = seconds
        self.per_message = self.seconds / FIRST_TAKE

    def wanted(self) -> int:
        """How many the next receive may take: up to ``most``, as many as
        its recent messages say it runs in ``seconds``."""
        if self.per_message * self.most <= self.seconds:
            return self.most
        return max(1, int(self.seconds / self.per_message))

    def ran(self, count: int, seconds: float) -> None:
        """A receive's ``count`` messages ran in ``seconds``."""
        if count:
            self.per_message += (seconds / count - self.per_message) * LEARNING_RATE
