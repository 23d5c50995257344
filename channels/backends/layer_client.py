"""The contract between an interface server and a channel backend.

An interface server runs on a Twisted reactor and must never block it, while
a backend's public API (``BaseChannelBackend``) blocks. A *layer client* is
the non-blocking face of one backend for one reactor: every method is called
on the reactor thread and returns at once; results arrive as Deferreds (and
``deliver`` calls) on the reactor thread.

``BaseChannelBackend.layer_client(reactor)`` gives one. The default, for any
backend, makes the blocking calls in threads
(``channels.backends.threaded_client``); a backend that can speak to its
store without blocking (Redis: ``channels.backends.redis.reactor``) returns
its own. The interface server (``channels.interfaces.layer``) has one code
path for both.

Messages cross this boundary already validated and encoded (``bytes``, see
``channels.backends.base.encode``), so that a bad message is refused on its
own, before it joins a batch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

# Called on the reactor with a batch of (channel, encoded message) read from
# the channels given to ``receive``.
Deliver = Callable[[list[tuple[str, bytes]]], None]
# The messages of a batch that were not sent: (position in the batch, why),
# ``ChannelFull`` or ``ChannelBackendUnavailable``.
SendFailures = list[tuple[int, Exception]]
# Called on the reactor with the backend's ChannelBackendUnavailable when a
# read of the channels given to ``receive`` failed: the store that holds
# them cannot be reached (each time a read fails).
Lost = Callable[[Exception], None]


class Reading:
    """One ``receive`` under way. ``cancel`` ends it: no read starts after
    it, and what a read under way takes is delivered or goes back, as at
    ``stop``."""

    def __init__(self, cancel: Callable[[], None]):
        self._cancel = cancel

    def cancel(self) -> None:
        self._cancel()


class LayerClient:
    """Non-blocking access to one backend from a reactor (see the module's
    docstring). Subclasses implement every method but ``pace``."""

    # After delivering a small batch of more than one message (several
    # clients are busy), a reader waits ``coalesce_wait`` seconds before its
    # next read, so that the read carries more: a call costs round trips
    # whatever it carries. A lone client never waits, and under a load the
    # CPU cannot keep up with, batches grow past ``coalesce_below`` and
    # nobody waits. How the values were chosen: docs/benchmarks.rst.
    coalesce_below = 8
    coalesce_wait = 0.001
    # How long one blocking read waits for a message; it bounds how long a
    # stopped reader takes to end, and with the store's answer margin, how
    # long a store that stopped answering goes unnoticed (docs/scaling.rst).
    poll_timeout = 0.5

    def __init__(self, backend: BaseChannelBackend, reactor: Any):
        self.backend = backend
        self.reactor = reactor

    def pace(self, received: int) -> float:
        """Seconds to wait before the next read, after a batch of
        ``received`` messages."""
        return self.coalesce_wait if 1 < received < self.coalesce_below else 0.0

    def send_batch(self, messages: list[tuple[str, bytes]]) -> Deferred:
        """Send validated, encoded messages. Fires with ``SendFailures``
        once the backend has taken or refused each, after any retries the
        backend's rules allow (a normal channel tries the other shards); it
        does not errback for a refusal or an outage.

        Messages to one channel are sent in the order of the calls and of
        each batch: a later batch never overtakes an earlier one on the way
        to one channel."""
        raise NotImplementedError

    def set_paused(self, channel: str, paused: bool) -> Deferred:
        """Pause or resume a response channel (the backend's
        ``pause_channel``). Changes to one channel apply in the order asked.
        Fires with None, or fails with the backend's exception; the caller
        decides whether to try again."""
        raise NotImplementedError

    def receive(self, channels: list[str], limit: int, deliver: Deliver,
                lost: Lost | None = None) -> Reading:
        """Read ``channels`` (process wildcards of response channels) until
        ``stop`` or the Reading's ``cancel``, handing each batch of up to
        ``limit`` messages to ``deliver``. A failed read is retried (the
        backend logs outages); one that failed because the backend could
        not be reached is told to ``lost``. A store that stops answering
        is found out within ``poll_timeout`` plus a bounded wait for its
        answer (docs/scaling.rst), not left to TCP's timeouts."""
        raise NotImplementedError

    def discard_from_groups(self, channels: list[str]) -> Deferred:
        """The backend's ``discard_from_groups``: closed sockets' reply
        channels leave every group. Fires with None, or fails with the
        backend's exception."""
        raise NotImplementedError

    def set_heartbeat(self, kind: str, id: str, data: bytes, ttl: float) -> Deferred:
        """The backend's ``set_heartbeat`` of an encoded record (a valid
        kind and id). Fires with None, or fails with the backend's
        exception."""
        raise NotImplementedError

    def heartbeats(self, kind: str) -> Deferred:
        """The backend's ``heartbeats(kind)``: fires with a
        ``channels.backends.heartbeats.Heartbeats``, or fails with the backend's
        exception (ChannelBackendUnavailable: none of the store answered)."""
        raise NotImplementedError

    def clear_heartbeat(self, kind: str, id: str) -> Deferred:
        """The backend's ``clear_heartbeat``; fires as ``set_heartbeat``."""
        raise NotImplementedError

    def stop(self) -> Deferred:
        """Stop reading; sends and changes asked for before still go. Fires
        once no read is in progress; a message taken by a read that was
        under way is put back at the head of its channel for the next reader
        in this process, never lost in between."""
        raise NotImplementedError
