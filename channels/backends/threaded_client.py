"""The layer client of any backend: its blocking calls in two threads.

A sender thread makes the calls that change the store (sends, pauses and
resumes, heartbeats, closed sockets leaving their groups) one after the
other, in the order asked, so that no message overtakes an earlier one to
its channel; the batches that wait for it when it is free go as one call.
A receiver thread reads, and hands each batch it reads to the reactor with
one ``callFromThread``. Every result reaches the reactor the same way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from twisted.internet.defer import Deferred, DeferredList
from twisted.python.failure import Failure

from channels.backends.layer_client import Deliver, LayerClient, Lost, Reading, SendFailures
from channels.exceptions import ChannelBackendUnavailable, ChannelFull

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

logger = logging.getLogger("channels.server")

# After a failed read, the next waits this long.
RECEIVE_RETRY = 0.5
# How long one read waits on a backend inside this process (``local_only``),
# which costs no round trip: stop() is then as prompt as a server's
# shutdown should be.
LOCAL_POLL_TIMEOUT = 0.05


class _Send(NamedTuple):
    messages: list[tuple[str, bytes]]
    done: Deferred


class _Call(NamedTuple):
    """Any other call of the backend, whose result ``done`` gets."""

    function: Callable[..., Any]
    args: tuple
    done: Deferred


_STOP = object()


class ThreadedLayerClient(LayerClient):
    """See the module's docstring. The threads start at first use."""

    def __init__(self, backend: BaseChannelBackend, reactor: Any):
        super().__init__(backend, reactor)
        if backend.local_only:
            self.poll_timeout = LOCAL_POLL_TIMEOUT
        self._outbox: queue.SimpleQueue = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._stopped = threading.Event()
        # Fired, on the reactor, as each thread ends.
        self._ended: list[Deferred] = []

    def send_batch(self, messages: list[tuple[str, bytes]]) -> Deferred:
        done = Deferred()
        self._put(_Send(messages, done))
        return done

    def set_paused(self, channel: str, paused: bool) -> Deferred:
        backend = self.backend
        return self._call(backend.pause_channel if paused else backend.resume_channel, channel)

    def discard_from_groups(self, channels: list[str]) -> Deferred:
        return self._call(self.backend.discard_from_groups, channels)

    def set_heartbeat(self, kind: str, id: str, data: bytes, ttl: float) -> Deferred:
        return self._call(self.backend.set_heartbeat_encoded, kind, id, data, ttl)

    def heartbeats(self, kind: str) -> Deferred:
        return self._call(self.backend.heartbeats, kind)

    def clear_heartbeat(self, kind: str, id: str) -> Deferred:
        return self._call(self.backend.clear_heartbeat, kind, id)

    def _call(self, function: Callable[..., Any], *args: Any) -> Deferred:
        done = Deferred()
        self._put(_Call(function, args, done))
        return done

    def receive(self, channels: list[str], limit: int, deliver: Deliver,
                lost: Lost | None = None) -> Reading:
        cancelled = threading.Event()
        self._start(self._receive_loop, "receiver", channels, limit, deliver, lost, cancelled)
        return Reading(cancelled.set)

    def stop(self) -> Deferred:
        """Stop reading, and the sender once what it was given is sent."""
        self._stopped.set()
        if self._sender is not None:
            self._outbox.put(_STOP)
        return DeferredList(self._ended).addCallback(lambda _: None)

    def _put(self, item: _Send | _Call) -> None:
        if self._sender is None:
            self._sender = self._start(self._send_loop, "sender")
        self._outbox.put(item)

    def _start(self, loop: Any, name: str, *args: Any) -> threading.Thread:
        ended = Deferred()
        self._ended.append(ended)

        def run() -> None:
            try:
                loop(*args)
            finally:
                self.reactor.callFromThread(ended.callback, None)

        thread = threading.Thread(target=run, name=f"channels-server-{name}", daemon=True)
        thread.start()
        return thread

    # Sender thread.

    def _send_loop(self) -> None:
        stop = False
        while not stop:
            items = [self._outbox.get()]
            while True:
                try:
                    items.append(self._outbox.get_nowait())
                except queue.Empty:
                    break
            sends: list[_Send] = []
            sent = 0
            for item in items:
                if isinstance(item, _Send):
                    sends.append(item)
                    continue
                sent += self._send(sends)
                sends = []
                if item is _STOP:
                    stop = True
                else:
                    self._run(item)
            sent += self._send(sends)
            wait = self.pace(sent)
            if wait and not stop:
                time.sleep(wait)

    def _send(self, sends: list[_Send]) -> int:
        """Send the batches as one call; fire their Deferreds with what
        each lost."""
        if not sends:
            return 0
        messages = [message for send in sends for message in send.messages]
        failures = self._refused(messages)
        outcomes: list[SendFailures] = [[] for _ in sends]
        if failures:
            places = [(index, position) for index, send in enumerate(sends)
                      for position in range(len(send.messages))]
            for position, exc in sorted(failures, key=lambda failure: failure[0]):
                index, local = places[position]
                outcomes[index].append((local, exc))
        self.reactor.callFromThread(_fire, sends, outcomes)
        return len(messages)

    def _refused(self, messages: list[tuple[str, bytes]]) -> SendFailures:
        try:
            full = self.backend.send_many_encoded(messages)
        except Exception as exc:
            return [(position, exc) for position in range(len(messages))]
        if not full:
            return []
        # A full channel stays full for the rest of the call, so its last n
        # messages are the n that were refused.
        refused = Counter(full)
        failures: SendFailures = []
        for position in range(len(messages) - 1, -1, -1):
            channel = messages[position][0]
            if refused[channel] > 0:
                refused[channel] -= 1
                failures.append((position, ChannelFull(f"Channel {channel!r} is full")))
        return failures

    def _run(self, call: _Call) -> None:
        try:
            result = call.function(*call.args)
        except Exception:
            self.reactor.callFromThread(call.done.errback, Failure())
        else:
            self.reactor.callFromThread(call.done.callback, result)

    # Receiver thread.

    def _receive_loop(self, channels: list[str], limit: int, deliver: Deliver,
                      lost: Lost | None, cancelled: threading.Event) -> None:
        failing = False
        while not (self._stopped.is_set() or cancelled.is_set()):
            try:
                batch = self.backend.receive_batch_encoded(channels, limit, self.poll_timeout)
            except ChannelBackendUnavailable as exc:
                # The backend logs its outages, once each.
                if lost is not None and not cancelled.is_set():
                    self.reactor.callFromThread(lost, exc)
                self._stopped.wait(RECEIVE_RETRY)
                continue
            except Exception as exc:
                if not failing:  # once, until a read succeeds
                    failing = True
                    logger.warning("Could not receive from backend %r: %s; retrying",
                                   self.backend.alias, exc)
                self._stopped.wait(RECEIVE_RETRY)
                continue
            failing = False
            if batch and (self._stopped.is_set() or cancelled.is_set()):
                self._put_back(batch)
            elif batch:
                self.reactor.callFromThread(deliver, batch)
                wait = self.pace(len(batch))
                if wait:
                    time.sleep(wait)

    def _put_back(self, batch: list[tuple[str, bytes]]) -> None:
        """A read that ended after stop: the next reader in this process
        owns these, in their order."""
        for channel, data in reversed(batch):
            try:
                self.backend.requeue_encoded(channel, data)
            except Exception:
                logger.exception("Could not requeue a reply on %r; it is lost", channel)


def _fire(sends: list[_Send], outcomes: list[SendFailures]) -> None:
    for send, outcome in zip(sends, outcomes, strict=True):
        send.done.callback(outcome)
