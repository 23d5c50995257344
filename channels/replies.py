"""Replies reaching whoever waits for them.

Every process that hands work to others waits for answers on reply
channels of its own, and reads all of them at once through the process
wildcard (``channels.names.process_wildcard``): one inbox per process, not
one read per waiting client. ``ReplyDemultiplexer`` then hands each reply to
whoever waits for its channel. The interface server's bridge
(``channels.interfaces.layer``) reads through its layer client on the
reactor; a process without a reactor (the WSGI adapter under gunicorn, a
``Channel.as_view`` view) reads in one thread, ``ReplyReceiver``, and waits
for each HTTP response with a ``PendingResponse``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

from channels import process
from channels.backends.base import BaseChannelBackend
from channels.messages.http import (
    MalformedResponse,
    ResponseStart,
    disconnect_message,
    response_chunk,
    response_start,
)
from channels.names import HTTP_REPLY_PREFIX, new_name, process_wildcard

logger = logging.getLogger("channels.replies")

# Called with a reply's content by whichever thread read it.
Listener = Callable[[dict[str, Any]], None]

# How long the receiver blocks per call; it also bounds how long a receiver
# that lost the backend waits before it tries again, and how long a stopped
# one takes to end.
RECEIVE_TIMEOUT = 1.0


class ResponseIncomplete(Exception):
    """The response stopped before its last chunk (none came in time, or a
    malformed one). Raised into the server iterating the content, so that it
    drops the connection instead of ending the response as if it were whole."""


class ReplyDemultiplexer:
    """Who waits for each reply channel, and the hand-over of what a reader
    took. A reply for a channel nobody waits for any more (its client left,
    its request timed out) is dropped.

    One reader delivers; listeners may come and go from other threads, as
    each change is a single dict operation."""

    def __init__(self) -> None:
        self._listeners: dict[str, Listener] = {}

    def __len__(self) -> int:
        return len(self._listeners)

    def add(self, channel: str, listener: Listener) -> None:
        self._listeners[channel] = listener

    def discard(self, channel: str) -> None:
        self._listeners.pop(channel, None)

    def deliver(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Hand each reply to its listener, in order. A listener that fails
        is logged and costs only its own reply."""
        listeners = self._listeners
        for channel, content in batch:
            listener = listeners.get(channel)
            if listener is None:
                continue
            try:
                listener(content)
            except Exception:
                logger.exception("Could not handle a message on %r", channel)


class ReplyReceiver:
    """Reads every HTTP response for this process in one thread, for a
    process without a reactor, and hands each to the request waiting for it.
    The thread starts at the first request of each process (after a server
    forks its workers: threads do not survive a fork, and the wildcard is
    per process)."""

    def __init__(self, backend: BaseChannelBackend):
        self.backend = backend
        self.replies = ReplyDemultiplexer()
        self._lock = threading.Lock()
        self._pid: int | None = None

    def register(self, reply_channel: str, listener: Listener) -> None:
        self.replies.add(reply_channel, listener)
        with self._lock:
            if self._pid != process.pid:
                self._pid = process.pid
                threading.Thread(target=self._run, args=(process_wildcard(HTTP_REPLY_PREFIX),),
                                 name="channels-replies", daemon=True).start()

    def unregister(self, reply_channel: str) -> None:
        self.replies.discard(reply_channel)

    @property
    def waiting(self) -> int:
        return len(self.replies)

    def stop(self) -> None:
        """End the thread (within RECEIVE_TIMEOUT)."""
        self._pid = None

    def _run(self, wildcard: str) -> None:
        pid = process.pid
        pause = threading.Event()
        while self._pid == pid:
            try:
                batch = self.backend.receive_batch([wildcard], limit=100,
                                                   timeout=RECEIVE_TIMEOUT)
            except Exception:
                logger.exception("Cannot receive responses from channel backend %r",
                                 self.backend.alias)
                pause.wait(RECEIVE_TIMEOUT)
                continue
            self.replies.deliver(batch)


_receivers: dict[str, ReplyReceiver] = {}
_receivers_lock = threading.Lock()


def receiver_for(backend: BaseChannelBackend) -> ReplyReceiver:
    """This process's receiver for ``backend`` (a new one, and the old one
    stopped, when the alias's backend was replaced, as tests do)."""
    with _receivers_lock:
        receiver = _receivers.get(backend.alias)
        if receiver is None or receiver.backend is not backend:
            if receiver is not None:
                receiver.stop()
            receiver = _receivers[backend.alias] = ReplyReceiver(backend)
        return receiver


class PendingResponse:
    """The response to one request, from its reply channel.

    ``wait_start()`` gives its status and headers; iterating gives its
    content as it arrives; ``close()`` (which WSGI servers and Django's
    streaming responses call, even when the client left early) stops
    waiting and, if the response was not complete, sends
    ``http.disconnect``.
    """

    def __init__(self, backend: BaseChannelBackend, timeout: float, path: str = ""):
        self.backend = backend
        self.timeout = timeout
        self.path = path
        self.reply_channel = new_name(HTTP_REPLY_PREFIX)
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._receiver = receiver_for(backend)
        self._receiver.register(self.reply_channel, self._inbox.put)
        self.start: ResponseStart | None = None
        self.finished = False
        self._closed = False

    def wait_start(self) -> ResponseStart | None:
        """The first response message, checked; None if none came within
        the timeout. Raises MalformedResponse."""
        try:
            message = self._inbox.get(timeout=self.timeout)
        except queue.Empty:
            return None
        self.start = response_start(message)
        self.finished = not self.start.more_content
        return self.start

    def __iter__(self) -> Iterator[bytes]:
        if self.start.content:
            yield self.start.content
        more = self.start.more_content
        while more:
            try:
                chunk = response_chunk(self._inbox.get(timeout=self.timeout))
            except queue.Empty:
                raise ResponseIncomplete(
                    f"No chunk on {self.reply_channel!r} within {self.timeout} s")
            except MalformedResponse as exc:
                raise ResponseIncomplete(f"Malformed chunk on {self.reply_channel!r}: {exc}")
            more = chunk.more_content
            if chunk.content:
                yield chunk.content
        self.finished = True

    def close(self, disconnect: bool = True) -> None:
        """Stop waiting. ``disconnect=False``: the request never reached the
        layer, so nobody needs to hear of it."""
        if self._closed:
            return
        self._closed = True
        self._receiver.unregister(self.reply_channel)
        if disconnect and not self.finished:
            try:
                self.backend.send("http.disconnect",
                                  disconnect_message(self.reply_channel, self.path),
                                  immediately=True)
            except Exception:
                logger.debug("Could not send http.disconnect", exc_info=True)
