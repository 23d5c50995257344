"""The bridge between the reactor thread and the channel backend.

Whatever the connections want to send during one reactor turn goes as one
batch (one round trip per shard), and every response channel of this
process is read at once through the process wildcards. The cost per message
is therefore a list append on each side, whatever the number of
connections.

A backend with a reactor client (``BaseChannelBackend.layer_client``:
Redis) makes both calls on the reactor without blocking it. With any other,
backend calls block, so none happens on the reactor: a sender thread sends
the batches, and a receiver thread hands each batch it reads to the reactor
with a single ``callFromThread``. The sender thread also runs, for every
backend, the rare calls: pauses and resumes, and what the reactor client
hands back (see channels/backends/redis/reactor.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any, NamedTuple

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from channels import names
from channels.backends.base import BaseChannelBackend, decode, encode
from channels.exceptions import ChannelFull, InvalidChannelName, InvalidMessage

logger = logging.getLogger("channels.server")

REPLY_PREFIXES = (names.HTTP_REPLY_PREFIX, names.WEBSOCKET_REPLY_PREFIX)

Listener = Callable[[dict[str, Any]], None]
# Called on the reactor with the exception when a message could not be sent.
FailureCallback = Callable[[Exception], None] | None
# Called on the reactor once the backend has taken a message.
SentCallback = Callable[[], None] | None

_STOP = object()


class _Pause(NamedTuple):
    channel: str
    paused: bool


# After a small batch of more than one message (several clients are busy),
# the reader (and, in threads, the sender) pauses before its next call, so
# that it carries more: a call costs round trips whatever it carries. A lone
# client never waits, and under a load the CPU cannot keep up with, batches
# grow past COALESCE_BELOW and nobody pauses. How the values were chosen:
# docs/benchmarks.rst.
COALESCE_BELOW = 8
COALESCE_WAIT = 0.001

# One bridge per backend per process: response channels are read through
# process-wide wildcards, so two receivers on one backend would take each
# other's replies. Touched on the reactor thread only.
_bridges: dict[int, LayerBridge] = {}


def acquire_bridge(backend: BaseChannelBackend, reactor: Any) -> LayerBridge:
    """The running bridge of ``backend``, started on first use."""
    bridge = _bridges.get(id(backend))
    if bridge is None:
        bridge = _bridges[id(backend)] = LayerBridge(backend, reactor)
        bridge.start()
    bridge.users += 1
    return bridge


def release_bridge(bridge: LayerBridge) -> None:
    """Stop the bridge when its last server has stopped."""
    bridge.users -= 1
    if bridge.users <= 0 and _bridges.get(id(bridge.backend)) is bridge:
        del _bridges[id(bridge.backend)]
        bridge.stop()


class LayerBridge:
    """Sends and receives for every connection of one server process."""

    # A pause or resume that fails (Redis unreachable for a moment) is tried
    # again every change_retry seconds, change_attempts times, unless the
    # channel's next one replaces it: a channel left paused holds its worker
    # until the handler's send timeout, and one left running lets the worker
    # fill this server with what the client has not read.
    change_retry = 1.0
    change_attempts = 5

    def __init__(self, backend: BaseChannelBackend, reactor: Any,
                 receive_limit: int = 500, poll_timeout: float = 1.0):
        self.backend = backend
        self.reactor = reactor
        self.receive_limit = receive_limit
        self.poll_timeout = poll_timeout
        self._listeners: dict[str, Listener] = {}
        self._pending: list[tuple[str, dict, FailureCallback]] = []
        # The messages of _pending whose sender wants to hear of success.
        self._tracked: list[_Tracked] = []
        self._flush_call = None
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        # Sender thread only: channels whose pause or resume failed, with
        # the change and the attempts made, and when to try them again.
        self._retry_later: dict[str, tuple[bool, int]] = {}
        self._retry_at = 0.0
        self._stopped = threading.Event()
        self._wildcards = [names.process_wildcard(prefix) for prefix in REPLY_PREFIXES]
        self._client = None
        # Reactor client only: its batches not yet answered, and flushed()
        # Deferreds that wait for them.
        self._in_flight = 0
        self._flush_waiters: list[Deferred] = []
        # Reactor client only: the last change asked for each channel, and
        # the channels whose change failed there (the sender thread has them).
        self._asked: dict[str, bool] = {}
        self._paused_by_thread: set[str] = set()
        self.users = 0

    def start(self) -> None:
        """Start reading and sending; on the reactor thread, or before the
        reactor runs."""
        self._client = self.backend.layer_client(self.reactor)
        loops = [(self._send_loop, "sender")]
        if self._client is None:
            loops.append((self._receive_loop, "receiver"))
        else:
            self._client.poll_timeout = self.poll_timeout
            self._client.receive(self._wildcards, self.receive_limit, self._deliver_data)
        for target, name in loops:
            thread = threading.Thread(target=target, name=f"channels-server-{name}",
                                      daemon=True)
            thread.start()

    def stop(self) -> None:
        """Stop after what was already handed over is sent. A receive in
        progress finishes in the background; what it takes is put back for
        the next bridge (see _receive_loop and the reactor client)."""
        self._flush()
        self._stopped.set()
        self._outbox.put(_STOP)
        if self._client is not None:
            self._client.stop()

    # Reactor side.

    def new_reply_channel(self, prefix: str, listener: Listener) -> str:
        """A fresh response channel whose messages go to ``listener``."""
        name = names.new_name(prefix)
        self._listeners[name] = listener
        return name

    def forget(self, name: str) -> None:
        self._listeners.pop(name, None)
        self._asked.pop(name, None)
        self._paused_by_thread.discard(name)

    def send(self, channel: str, content: dict[str, Any],
             on_failure: FailureCallback = None, on_sent: SentCallback = None) -> None:
        """Queue a message for the next batch; ``on_failure`` hears of
        ChannelFull or a backend error, ``on_sent`` of the backend taking it.

        ``on_sent`` lets a sender keep one message of a stream in flight, so
        that a refused one cannot be overtaken by the next (request bodies).
        Only such messages cost the sender thread any bookkeeping."""
        if on_sent is not None:
            on_failure = _Tracked(on_failure, on_sent)
            self._tracked.append(on_failure)
        self._pending.append((channel, content, on_failure))
        if self._flush_call is None:
            self._flush_call = self.reactor.callLater(0, self._flush)

    def pause(self, channel: str, paused: bool) -> None:
        """Pause or resume a response channel of this process (the
        backend's ``pause_channel``), in the order asked."""
        if self._client is None or channel in self._paused_by_thread:
            self._outbox.put(_Pause(channel, paused))
        else:
            self._asked[channel] = paused
            self._client.set_paused(channel, paused).addErrback(
                self._pause_failed, _Pause(channel, paused))

    def _pause_failed(self, failure: Failure, change: _Pause) -> None:
        if self._asked.get(change.channel) != change.paused:
            return  # a later change was asked for since: that one decides
        # The sender thread retries it, and takes the channel's later
        # changes too, so that they stay in order.
        self._paused_by_thread.add(change.channel)
        self._outbox.put(change)

    def flushed(self) -> Deferred:
        """Fires once everything queued so far has been handed to the
        backend (used at shutdown, for the disconnect messages)."""
        self._flush()
        done = Deferred()
        if self._in_flight:
            self._flush_waiters.append(done)  # then behind what they hand back
        else:
            self._outbox.put(done)
        return done

    def _flush(self) -> None:
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        if self._pending:
            batch, self._pending = self._pending, []
            tracked, self._tracked = self._tracked, []
            if self._client is None:
                self._outbox.put((batch, tracked))
            else:
                self._send_now(batch, tracked)

    def _send_now(self, batch, tracked) -> None:
        """Send a batch through the reactor client. A message that cannot
        travel fails alone."""
        messages, kept, failures = [], [], []
        for item in batch:
            channel, content, callback = item
            try:
                messages.append((names.validate_name(channel), encode(content)))
            except (InvalidChannelName, InvalidMessage) as exc:
                if callback is not None:
                    failures.append((callback, exc))
                continue
            kept.append(item)
        self._in_flight += 1
        self._client.send_batch(messages).addBoth(self._sent_now, kept, tracked, failures)

    def _sent_now(self, outcome, kept, tracked, failures) -> None:
        self._in_flight -= 1
        if isinstance(outcome, Failure):
            logger.error("Could not send %d message(s) to backend %r", len(kept),
                         self.backend.alias, exc_info=outcome.value)
            failed, back = [(position, outcome.value) for position in range(len(kept))], []
        else:
            failed, back = outcome, []  # the client retries on other shards itself
        errors = [exc for _, exc in failed if not isinstance(exc, ChannelFull)]
        if errors:
            logger.warning("Could not send %d message(s) to backend %r: %s",
                           len(errors), self.backend.alias, errors[0])
        failures += [(kept[position][2], exc) for position, exc in failed
                     if kept[position][2] is not None]
        handed = {kept[position][2] for position in back}
        if back:
            self._outbox.put(([kept[position] for position in back],
                              [t for t in tracked if t in handed]))
        refused = {callback for callback, _ in failures}
        sent = [t for t in tracked if t not in refused and t not in handed]
        if failures or sent:
            self._report(failures, sent)
        if not self._in_flight:
            waiters, self._flush_waiters = self._flush_waiters, []
            for waiter in waiters:
                self._outbox.put(waiter)

    def _deliver_data(self, batch: list[tuple[str, bytes]]) -> None:
        decoded = []
        for channel, data in batch:
            try:
                decoded.append((channel, decode(data)))
            except Exception:
                logger.exception("Could not decode a message on %r; dropped", channel)
        self._deliver(decoded)

    def _deliver(self, batch: list[tuple[str, dict]]) -> None:
        listeners = self._listeners
        for channel, content in batch:
            listener = listeners.get(channel)
            if listener is None:
                # The connection is gone; its replies have nobody to go to.
                continue
            try:
                listener(content)
            except Exception:
                logger.exception("Could not handle a message on %r", channel)

    @staticmethod
    def _report(failures: list[tuple[Callable, Exception]], sent: list[_Tracked]) -> None:
        for callback, exc in failures:
            try:
                callback(exc)
            except Exception:
                logger.exception("Send failure handler failed")
        for tracked in sent:
            try:
                tracked.on_sent()
            except Exception:
                logger.exception("Send success handler failed")

    # Sender thread.

    def _send_loop(self) -> None:
        while True:
            try:
                item = self._outbox.get(timeout=self._retry_wait())
            except queue.Empty:
                self._retry_changes()
                continue
            batch, tracked, markers, pauses, stop = [], [], [], [], False
            while True:
                if item is _STOP:
                    stop = True
                elif isinstance(item, Deferred):
                    markers.append(item)
                elif isinstance(item, _Pause):
                    pauses.append(item)
                else:
                    batch.extend(item[0])
                    tracked.extend(item[1])
                try:
                    item = self._outbox.get_nowait()
                except queue.Empty:
                    break
            if batch:
                failures = self._send_batch(batch)
                sent = tracked
                if tracked and failures:
                    failed = {callback for callback, _ in failures}
                    sent = [t for t in tracked if t not in failed]
                if failures or sent:
                    self.reactor.callFromThread(self._report, failures, sent)
            for pause in pauses:
                # The latest word on a channel replaces a change to retry.
                self._retry_later.pop(pause.channel, None)
                self._set_paused(pause.channel, pause.paused)
            if self._retry_later and time.monotonic() >= self._retry_at:
                self._retry_changes()
            for marker in markers:
                self.reactor.callFromThread(marker.callback, None)
            if stop:
                return
            if 1 < len(batch) < COALESCE_BELOW:
                time.sleep(COALESCE_WAIT)

    def _send_batch(self, batch):
        try:
            full = self.backend.send_many([(channel, content) for channel, content, _ in batch])
        except InvalidMessage:
            # One bad message fails the whole call before anything is sent;
            # send one by one so that it costs only itself.
            return self._send_each(batch)
        except Exception as exc:
            logger.warning("Could not send %d message(s) to backend %r: %s",
                           len(batch), self.backend.alias, exc)
            return [(callback, exc) for _, _, callback in batch if callback is not None]
        if not full:
            return []
        # A full channel stays full for the rest of the batch, so its last
        # n messages are the n that were refused.
        refused = Counter(full)
        failures = []
        for channel, _, callback in reversed(batch):
            if refused[channel] > 0:
                refused[channel] -= 1
                if callback is not None:
                    failures.append((callback, ChannelFull(f"Channel {channel!r} is full")))
        return failures

    def _set_paused(self, channel: str, paused: bool, attempt: int = 1) -> None:
        change = self.backend.pause_channel if paused else self.backend.resume_channel
        try:
            change(channel)
        except Exception as exc:
            again = attempt <= self.change_attempts
            logger.warning("Could not %s %r: %s%s", "pause" if paused else "resume",
                           channel, exc, "; trying again" if again else "")
            if again:
                if not self._retry_later:
                    self._retry_at = time.monotonic() + self.change_retry
                self._retry_later[channel] = (paused, attempt)

    def _retry_wait(self) -> float | None:
        if not self._retry_later:
            return None
        return max(self._retry_at - time.monotonic(), 0)

    def _retry_changes(self) -> None:
        retry, self._retry_later = self._retry_later, {}
        self._retry_at = time.monotonic() + self.change_retry
        for channel, (paused, attempts) in retry.items():
            self._set_paused(channel, paused, attempts + 1)

    def _send_each(self, batch):
        failures = []
        for channel, content, callback in batch:
            try:
                self.backend.send(channel, content)
            except Exception as exc:
                if not isinstance(exc, ChannelFull):
                    logger.warning("Could not send a message to %r: %s", channel, exc)
                if callback is not None:
                    failures.append((callback, exc))
        return failures

    # Receiver thread.

    def _receive_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                batch = self.backend.receive_batch(
                    self._wildcards, self.receive_limit, self.poll_timeout)
            except Exception as exc:
                logger.warning("Could not receive from backend %r: %s; retrying",
                               self.backend.alias, exc)
                self._stopped.wait(0.5)
                continue
            if batch and self._stopped.is_set():
                # A later bridge on this backend owns these now.
                self._requeue(batch)
            elif batch:
                self.reactor.callFromThread(self._deliver, batch)
                wait = _pace(len(batch))
                if wait:
                    time.sleep(wait)

    def _requeue(self, batch: list[tuple[str, dict]]) -> None:
        for channel, content in reversed(batch):
            try:
                self.backend.requeue(channel, content)
            except Exception:
                logger.exception("Could not requeue a reply on %r; it is lost", channel)


def _pace(received: int, wait: float = COALESCE_WAIT) -> float:
    """How long the receiver waits before its next read, after a batch of
    ``received`` messages (see COALESCE_WAIT)."""
    return wait if 1 < received < COALESCE_BELOW else 0.0


class _Tracked:
    """The failure callback of a message whose sender also wants to hear
    of success: the sender thread tells the two apart by identity."""

    __slots__ = ("on_failure", "on_sent")

    def __init__(self, on_failure: FailureCallback, on_sent: Callable[[], None]):
        self.on_failure = on_failure
        self.on_sent = on_sent

    def __call__(self, exc: Exception) -> None:
        if self.on_failure is not None:
            self.on_failure(exc)
