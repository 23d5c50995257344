"""Sends held for a moment while a worker runs consumers, and sent together.

A consumer's reply sent at once is a round trip to the store per message:
the worker waits for it, the store wakes for it, and on a busy machine each
wake is a context switch. Held, the replies of all the consumers a worker
runs from one receive go in one call per shard (``send_many``) once the
last of them returns, which in a WebSocket echo takes a third of the
workers' CPU and a fifth of Redis's per message (docs/benchmarks.rst,
"Consumer sends held").

Held only briefly: a send never waits more than about ``FLUSH_AFTER``, so a
consumer that runs long (a streamed response, progress reports) is heard
while it runs, as Nagle's algorithm or a Kafka producer's ``linger.ms``
hold bytes. One watcher thread per process sees to that; it polls only
while something is held, so idle workers cost nothing.

A held send cannot raise ``ChannelFull`` at its caller: a full channel
costs its message, logged once per flush. A send that must hear it, or must
go before the consumer goes on (it waits for an answer), says
``immediately=True``: what is held goes first, so that the sends of one
thread reach each channel in the order they were made. Held sends are
checked and encoded when made, so a bad message still fails at the send
that made it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from channels import process
from channels.exceptions import ChannelBackendUnavailable

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

logger = logging.getLogger("channels.worker")

T = TypeVar("T")
Send = tuple["BaseChannelBackend", bool, str, bytes]

# The longest a send is held, give or take one TICK of the watcher, which
# looks this often while anything is held.
FLUSH_AFTER = 0.005
TICK = 0.0025
# How many refused channels one log line names.
NAMED = 5


class HeldSends:
    """The sends one thread holds, in the order they were made: (backend,
    whether to a group, channel or group name, encoded message)."""

    def __init__(self) -> None:
        self._sends: list[Send] = []
        # When the oldest of them was held (time.monotonic()).
        self.since = 0.0
        self._lock = threading.Lock()  # guards the list
        self._sending = threading.Lock()  # one flush at a time: order kept

    def __len__(self) -> int:
        return len(self._sends)

    def hold(self, backend: BaseChannelBackend, group: bool, name: str, data: bytes) -> None:
        with self._lock:
            if not self._sends:
                self.since = time.monotonic()
                _watcher().watch(self)
            self._sends.append((backend, group, name, data))

    def flush(self) -> None:
        """Send what is held, in order."""
        with self._sending:
            self._flush()

    def then(self, send: Callable[[], T]) -> T:
        """Send everything held, then call ``send``, before any other flush
        can come between: a send made ``immediately``."""
        with self._sending:
            self._flush()
            return send()

    def _flush(self) -> None:
        with self._lock:
            sends, self._sends = self._sends, []
        if sends:
            deliver(sends)


def deliver(sends: list[Send]) -> None:
    """Send ``sends`` in order: each run of channel messages to one backend
    in one ``send_many`` (one call per shard), each group message on its
    own. Nothing raises: the sends' consumers have moved on."""
    full: list[str] = []
    start = 0
    while start < len(sends):
        backend, group, name, data = sends[start]
        end = start + 1
        if group:
            _attempt(backend, backend.send_group_encoded, name, data)
        else:
            while end < len(sends) and sends[end][0] is backend and not sends[end][1]:
                end += 1
            refused = _attempt(backend, backend.send_many_encoded,
                               [(channel, message) for _, _, channel, message in sends[start:end]])
            full += refused or ()
        start = end
    if full:
        named = list(dict.fromkeys(full))
        more = ", ..." if len(named) > NAMED else ""
        logger.warning("%d message(s) that consumers sent were dropped: channel full (%s%s)",
                       len(full), ", ".join(map(repr, named[:NAMED])), more)


def _attempt(backend: BaseChannelBackend, call: Callable[..., T], *args: object) -> T | None:
    try:
        return call(*args)
    except ChannelBackendUnavailable as exc:
        # The backend logs an outage once, when it starts and when it ends.
        logger.debug("Held messages not sent to channel backend %r: %s", backend.alias, exc)
    except Exception:
        logger.exception("Could not send held messages to channel backend %r", backend.alias)
    return None


class _Watcher:
    """The thread that sends what has been held ``FLUSH_AFTER``. It ticks
    while anything is held and sleeps on an event otherwise, so a worker
    under load wakes it at most once a tick, and an idle one never."""

    def __init__(self) -> None:
        self._held: weakref.WeakSet[HeldSends] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        threading.Thread(target=self._run, daemon=True, name="channels-held-sends").start()

    def watch(self, held: HeldSends) -> None:
        with self._lock:
            self._held.add(held)
            if not self._wake.is_set():
                self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(TICK)
            with self._lock:
                watched = [held for held in self._held if len(held)]
                self._held = weakref.WeakSet(watched)
                if not watched:
                    self._wake.clear()
            due = time.monotonic() - FLUSH_AFTER
            for held in watched:
                if len(held) and held.since <= due:
                    held.flush()


# This process's watcher (a forked child starts its own).
_watcher = process.PerProcess(_Watcher)


_local = threading.local()


def held() -> HeldSends | None:
    """The sends this thread holds, if it is running consumers."""
    return getattr(_local, "held", None)


def flush() -> None:
    """Send what this thread holds now."""
    current = held()
    if current is not None:
        current.flush()


@contextlib.contextmanager
def holding() -> Iterator[HeldSends]:
    """Hold this thread's sends until the block ends (or ``flush``); then
    send what is left. Nested, the outer block's holding is used."""
    current = held()
    if current is not None:
        yield current
        return
    sends = _local.held = HeldSends()
    try:
        yield sends
    finally:
        _local.held = None
        sends.flush()
