"""The interface server's side of the channel layer, on the reactor.

Whatever the connections send during one reactor turn goes as one batch
(one round trip per shard), and every response channel of this process is
read at once through the process wildcards. The cost per message is
therefore a list append on each side, whatever the number of connections.

Replies come through the inbox of one process token (``self.token``); when
it cannot be read (its Redis shard stopped answering), the bridge takes a
new token whose inbox the backend can reach (``reply_token``) for new
clients, and tells every client still waiting on the old one, which
answers its own (HTTP 503, WebSocket closed 1011): replies already on their
way to the lost inbox are lost, never delivered twice. Workers find the new
inbox from the reply channel names alone. docs/scaling.rst.

The backend is reached through its layer client
(``BaseChannelBackend.layer_client``), which never blocks the reactor and
answers on it; so everything here runs on the reactor thread, and a timer
here is a ``callLater`` on the bridge's clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.python.failure import Failure

from channels import names
from channels.backends.base import BaseChannelBackend
from channels.backends.encoding import decode, encode
from channels.backends.layer_client import LayerClient, SendFailures
from channels.exceptions import (
    ChannelBackendUnavailable,
    ChannelFull,
    InvalidChannelName,
    InvalidMessage,
)
from channels.interfaces import metrics as server_metrics
from channels.replies import Listener, ReplyDemultiplexer

logger = logging.getLogger("channels.server")

REPLY_PREFIXES = (names.HTTP_REPLY_PREFIX, names.WEBSOCKET_REPLY_PREFIX)

# Called with the exception when a message could not be sent.
FailureCallback = Callable[[Exception], None] | None
# Called once the backend has taken a message.
SentCallback = Callable[[], None] | None
# Called when replies to a client can no longer arrive (its inbox was lost).
LostCallback = Callable[[], None]

# One bridge per backend per process: response channels are read through
# process-wide wildcards, so two readers on one backend would take each
# other's replies.
_bridges: dict[int, LayerBridge] = {}


def acquire_bridge(backend: BaseChannelBackend, reactor: Any) -> LayerBridge:
    """The running bridge of ``backend``, started on first use."""
    bridge = _bridges.get(id(backend))
    if bridge is None:
        bridge = _bridges[id(backend)] = LayerBridge(backend.layer_client(reactor))
        bridge.start()
    bridge.users += 1
    return bridge


def release_bridge(bridge: LayerBridge) -> Deferred:
    """Stop the bridge when its last server has stopped; fires once it has
    (see ``LayerBridge.stop``), so that a process exits with no read of
    its response channels under way, which the reactor would otherwise cut
    off, as if the backend had failed."""
    bridge.users -= 1
    if bridge.users <= 0 and _bridges.get(id(bridge.backend)) is bridge:
        del _bridges[id(bridge.backend)]
        return bridge.stop()
    return succeed(None)


class _Change:
    """A pause or resume of one channel, from when it is asked for until it
    takes, is given up, or a later one for the channel replaces it."""

    __slots__ = ("attempt", "paused", "retry")

    def __init__(self, paused: bool):
        self.paused = paused
        self.attempt = 0
        self.retry = None


class LayerBridge:
    """Sends and receives for every connection of one server process.

    ``clock`` schedules the batches and the retries (the client's reactor
    unless given; tests give a ``task.Clock``)."""

    # A pause or resume that fails (Redis unreachable for a moment) is tried
    # again every change_retry seconds, change_attempts times, unless the
    # channel's next one replaces it: a channel left paused holds its worker
    # until the handler's send timeout, and one left running lets the worker
    # fill this server with what the client has not read.
    change_retry = 1.0
    change_attempts = 5

    def __init__(self, client: LayerClient, clock: Any = None, receive_limit: int = 500):
        self.client = client
        self.backend = client.backend
        self.clock = client.reactor if clock is None else clock
        self.receive_limit = receive_limit
        self.replies = ReplyDemultiplexer()
        # The process token of new reply channels, whose inbox is read.
        self.token = names.process_token()
        self._reading = None
        # Reply channel: what its client does if its replies cannot arrive.
        self._on_lost: dict[str, LostCallback] = {}
        self.stopping = False
        # Messages for the next batch: (channel, content, on_failure, on_sent),
        # and how many have an on_sent.
        self._pending: list[tuple[str, Any, FailureCallback, SentCallback]] = []
        self._tracked = 0
        self._flush_call = None
        # Batches with the client, and flushed() Deferreds waiting for them.
        self._in_flight = 0
        self._flush_waiters: list[Deferred] = []
        self._changes: dict[str, _Change] = {}
        # Closed sockets' reply channels to take out of their groups next,
        # and the calls under way doing it.
        self._leaving: list[str] = []
        self._leave_call = None
        self._leaves: set[Deferred] = set()
        self.users = 0

    def start(self) -> None:
        """Start reading the response channels of this process."""
        wildcards = [names.process_wildcard(prefix, self.token) for prefix in REPLY_PREFIXES]
        self._reading = self.client.receive(wildcards, self.receive_limit, self._received,
                                            self._inbox_lost)

    def stop(self) -> Deferred:
        """Stop after what was already handed over is sent; fires once no
        read is in progress (what a read takes after this is put back for
        the next bridge)."""
        self.stopping = True
        self._flush()
        self._leave()
        for change in self._changes.values():
            if change.retry is not None:
                change.retry.cancel()
        self._changes.clear()
        leaves = DeferredList(list(self._leaves))
        return leaves.addCallback(lambda _: self.client.stop())

    # Receiving.

    def new_reply_channel(self, prefix: str, listener: Listener,
                          lost: LostCallback | None = None) -> str:
        """A fresh response channel whose messages go to ``listener``;
        ``lost`` is called if they can no longer arrive."""
        name = names.new_name(prefix, self.token)
        self.replies.add(name, listener)
        if lost is not None:
            self._on_lost[name] = lost
        return name

    def forget(self, name: str) -> None:
        """Stop listening on ``name``. A change of its pause still under way
        goes on: the worker must not be left facing a paused channel."""
        self.replies.discard(name)
        self._on_lost.pop(name, None)

    def _inbox_lost(self, error: Exception) -> None:
        """A read of the inbox failed: the store holding it cannot be
        reached. Its replies cannot arrive, so every client waiting on it
        is told; new clients get an inbox the backend can reach, if it
        knows one (each read that fails while it knows none tells the
        clients that came meanwhile)."""
        if self.stopping:
            return
        old = self.token
        token = self.backend.reply_token(old)
        if token is not None:
            self.token = token
            self._reading.cancel()
            self.start()
        waiting = [name for name in self._on_lost if names.owner_process(name) == old]
        if self.token != old:
            logger.warning("Replies to this process could not be read (%s): %d client(s) "
                           "waiting for them are answered (HTTP 503, WebSocket closed 1011); "
                           "new clients are served through another inbox", error,
                           len(waiting))
        for name in waiting:
            lost = self._on_lost.pop(name, None)
            if lost is not None:
                _report(lost)

    def _received(self, batch: list[tuple[str, bytes]]) -> None:
        replies = []
        for channel, data in batch:
            try:
                replies.append((channel, decode(data)))
            except Exception:
                logger.exception("Could not decode a message on %r; dropped", channel)
        self.replies.deliver(replies)

    # Sending.

    def send(self, channel: str, content: dict[str, Any],
             on_failure: FailureCallback = None, on_sent: SentCallback = None) -> None:
        """Queue a message for the next batch; ``on_failure`` hears of
        ChannelFull or a backend error, ``on_sent`` of the backend taking it.

        ``on_sent`` lets a sender keep one message of a stream in flight, so
        that a refused one cannot be overtaken by the next (request bodies)."""
        self._pending.append((channel, content, on_failure, on_sent))
        if on_sent is not None:
            self._tracked += 1
        if self._flush_call is None:
            self._flush_call = self.clock.callLater(0, self._flush)

    def flushed(self) -> Deferred:
        """Fires once everything queued so far has been handed to the
        backend (used at shutdown, for the disconnect messages)."""
        self._flush()
        if not self._in_flight:
            return succeed(None)
        done = Deferred()
        self._flush_waiters.append(done)
        return done

    def _flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if not self._pending:
            return
        batch, self._pending = self._pending, []
        tracked, self._tracked = self._tracked, 0
        # Checked and encoded one by one, so that a message that cannot
        # travel fails alone rather than its whole batch.
        messages, kept = [], []
        for item in batch:
            try:
                messages.append((names.validate_name(item[0]),
                                 encode(item[1], check_keys=False)))
            except (InvalidChannelName, InvalidMessage) as exc:
                if item[2] is not None:
                    _report(item[2], exc)
                tracked -= item[3] is not None
                continue
            kept.append(item)
        if kept:
            self._in_flight += 1
            self.client.send_batch(messages).addBoth(self._sent, kept, tracked,
                                                     self.clock.seconds())

    def _sent(self, outcome: SendFailures | Failure, kept: list, tracked: int,
              started: float) -> None:
        self._in_flight -= 1
        if isinstance(outcome, Failure):
            # A bug in the client: nothing is known to be sent.
            logger.error("Could not send %d message(s) to backend %r", len(kept),
                         self.backend.alias, exc_info=outcome.value)
            outcome = [(position, outcome.value) for position in range(len(kept))]
        unsent = [exc for _, exc in outcome if not isinstance(exc, ChannelFull)]
        metrics = server_metrics.active
        if metrics is not None:
            metrics.round_trip.observe(self.clock.seconds() - started)
            if outcome:
                metrics.send_unavailable += len(unsent)
                metrics.send_full += len(outcome) - len(unsent)
        # An outage is logged by the backend, once; anything else here.
        errors = [exc for exc in unsent if not isinstance(exc, ChannelBackendUnavailable)]
        if errors:
            logger.warning("Could not send %d message(s) to backend %r: %s",
                           len(errors), self.backend.alias, errors[0])
        if outcome or tracked:
            failed = dict(outcome)
            for position, (_, _, on_failure, on_sent) in enumerate(kept):
                exc = failed.get(position)
                if exc is None:
                    if on_sent is not None:
                        _report(on_sent)
                elif on_failure is not None:
                    _report(on_failure, exc)
        if not self._in_flight and self._flush_waiters:
            waiters, self._flush_waiters = self._flush_waiters, []
            for waiter in waiters:
                waiter.callback(None)

    # Pausing.

    def pause(self, channel: str, paused: bool) -> None:
        """Pause or resume a response channel of this process (the
        backend's ``pause_channel``), in the order asked; retried while it
        fails (see change_retry)."""
        previous = self._changes.get(channel)
        if previous is not None and previous.retry is not None:
            previous.retry.cancel()
        change = self._changes[channel] = _Change(paused)
        self._try(channel, change)

    def _try(self, channel: str, change: _Change) -> None:
        change.retry = None
        change.attempt += 1
        self.client.set_paused(channel, change.paused).addCallbacks(
            self._changed, self._change_failed,
            callbackArgs=(channel, change), errbackArgs=(channel, change))

    def _changed(self, _: None, channel: str, change: _Change) -> None:
        if self._changes.get(channel) is change:
            del self._changes[channel]

    def _change_failed(self, failure: Failure, channel: str, change: _Change) -> None:
        if self._changes.get(channel) is not change:
            return  # a later change was asked for since: that one decides
        again = change.attempt <= self.change_attempts
        # An outage is logged by the backend, once; anything else here.
        log = logger.debug if failure.check(ChannelBackendUnavailable) else logger.warning
        log("Could not %s %r: %s%s", "pause" if change.paused else "resume",
            channel, failure.value, "; trying again" if again else "")
        if again:
            change.retry = self.clock.callLater(self.change_retry, self._try, channel, change)
        else:
            del self._changes[channel]


    # Closed sockets.

    def leave_groups(self, channel: str) -> None:
        """``channel``'s socket closed: take it out of every group (the
        backend's ``discard_from_groups``), with the others closed in the
        same reactor turn, in one call. Tried again while it fails, as a
        pause is; a member left behind stays until this process stops. A
        backend that keeps no heartbeats binds no member to its socket:
        nothing to do."""
        if not self.backend.keeps_heartbeats:
            return
        self._leaving.append(channel)
        if self._leave_call is None:
            self._leave_call = self.clock.callLater(0, self._leave)

    def _leave(self, channels: list[str] | None = None, attempt: int = 1) -> None:
        if channels is None:
            if self._leave_call is not None and self._leave_call.active():
                self._leave_call.cancel()
            self._leave_call = None
            channels, self._leaving = self._leaving, []
        if not channels:
            return
        done = self.client.discard_from_groups(channels)
        self._leaves.add(done)
        done.addErrback(self._leave_failed, channels, attempt)
        done.addBoth(lambda _: self._leaves.discard(done))

    def _leave_failed(self, failure: Failure, channels: list[str], attempt: int) -> None:
        again = attempt <= self.change_attempts
        logger.warning("Could not take %d closed socket(s) out of their groups: %s%s",
                       len(channels), failure.value, "; trying again" if again else "")
        if again:
            self.clock.callLater(self.change_retry, self._leave, channels, attempt + 1)


def _report(callback: Callable[..., None], *args: Exception) -> None:
    try:
        callback(*args)
    except Exception:
        logger.exception("Send outcome handler failed")
