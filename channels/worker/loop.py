"""The loop that runs consumers."""

from __future__ import annotations

import fnmatch
import logging
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable

from django.db import close_old_connections
from django.db.backends.signals import connection_created

from channels.backends.base import BaseChannelBackend
from channels.exceptions import InvalidChannelName
from channels.message import Message
from channels.messages.websocket import accept_message, close_message
from channels.worker import heartbeat as heartbeats
from channels.worker.durations import Durations

logger = logging.getLogger("channels.worker")

# How long one blocking receive waits before the loop checks for a stop.
POLL_TIMEOUT = 1.0

# How many messages a worker takes in one receive when that many are waiting
# (it never waits for more than one). Each receive is a round trip to a
# networked backend: with 50 WebSocket clients echoing through 2 workers on
# 2 cores, taking up to 8 cuts worker CPU per message by about a third.
# Messages are only waiting when no worker is idle on their channel, so
# taking them ahead starves nobody, unless the consumer in hand runs long:
PREFETCH = 8
# ...then, after this many seconds, the messages taken ahead of it go back to
# the head of their channels, in order, for the next free worker. Longer than
# the decorators' LOCK_WAIT: a consumer that waits that long for a lock and
# requeues its message gives back those after it, in one go.
RELEASE_AFTER = 0.1


class _Database(threading.local):
    """Whether this thread has ever opened a database connection. Until it
    has, Django's close_old_connections() has nothing to close, yet looking
    through the thread's connections costs a tenth of a worker's time per
    message in a WebSocket echo: consumers that never touch the database
    skip it."""

    opened = False


_database = _Database()


def _connection_opened(sender, connection, **kwargs) -> None:
    _database.opened = True


connection_created.connect(_connection_opened, dispatch_uid="channels.worker")


def filter_channels(channels: Iterable[str], only: Iterable[str] = (),
                    exclude: Iterable[str] = ()) -> list[str]:
    """Apply --only-channels / --exclude-channels glob patterns."""
    only, exclude = list(only), list(exclude)
    return [
        name for name in channels
        if (not only or any(fnmatch.fnmatchcase(name, p) for p in only))
        and not any(fnmatch.fnmatchcase(name, p) for p in exclude)
    ]


class Worker:
    """Takes messages from every routed channel and runs their consumers.

    A consumer's exception is logged and the loop goes on: one bad message
    must not stop a worker that serves everybody else.

    ``prefetch`` is how many waiting messages one receive may take (see
    PREFETCH); 1 takes them one at a time.

    While it runs, it is counted in its process's heartbeat
    (``channels.worker.heartbeat``), on a backend that keeps them.
    """

    # The longest a stop() waits for the loop to notice it while idle.
    poll_timeout = POLL_TIMEOUT
    release_after = RELEASE_AFTER

    def __init__(self, channel_backend: BaseChannelBackend,
                 callback: Callable[[str, Message], None] | None = None,
                 channels: Iterable[str] | None = None, prefetch: int = PREFETCH):
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, not {prefetch!r}")
        self.channel_backend = channel_backend
        self.callback = callback
        registry = channel_backend.registry
        self.channels = list(channels) if channels is not None else registry.all_channel_names()
        self.prefetch = prefetch
        self._stop = threading.Event()
        self._signalled = False
        # Messages taken ahead of the consumer in hand, shared with the
        # releaser thread; the event is set while there are any.
        self._ahead: deque[tuple[str, dict]] = deque()
        self._ahead_lock = threading.Lock()
        self._holding = threading.Event()
        # One give-back at a time, so two cannot interleave their messages.
        self._giving_back = threading.Lock()
        # (number, start time) of the consumer running now, or None.
        self._running: tuple[int, float] | None = None
        self._runs = 0
        self._finished = threading.Event()
        # The message taken from the backend that runs now (under
        # _ahead_lock), for the heartbeat's record of what is in hand.
        self._current: tuple[str, dict] | None = None
        self._heartbeat: heartbeats.WorkerHeartbeat | None = None
        # Consumers run (errors included), those that raised, and messages
        # skipped because their client was answered already.
        self.handled = 0
        self.errors = 0
        self.skipped = 0
        # How long the consumers took (the heartbeat's busy and slowest).
        self.durations = Durations(channel_backend.heartbeat_interval)

    def stop(self, *args: object) -> None:
        """Finish the consumer in hand, then leave run()."""
        self._stop.set()

    def _stop_on_signal(self, signum: int, frame: object) -> None:
        # A plain assignment: Event.set() takes a lock that the interrupted
        # main thread may be holding inside Event.wait(), a deadlock.
        self._signalled = True

    @property
    def stopping(self) -> bool:
        return self._signalled or self._stop.is_set()

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._stop_on_signal)
        signal.signal(signal.SIGINT, self._stop_on_signal)

    def run(self) -> None:
        self._finished.clear()
        if self.channel_backend.keeps_heartbeats:
            self._heartbeat = heartbeats.attach(self)
        releaser = None
        if self.prefetch > 1:
            releaser = threading.Thread(target=self._release_loop, daemon=True,
                                        name="channels-worker-releaser")
            releaser.start()
        try:
            self._loop()
        finally:
            # Stopped with messages in hand: they go back, not away.
            self._give_back()
            self._finished.set()
            self._holding.set()  # wakes the releaser to end
            if releaser is not None:
                releaser.join()
            if self._heartbeat is not None:
                heartbeats.detach(self, self._heartbeat)
                self._heartbeat = None

    def in_hand(self) -> list[list[str]]:
        """``[channel, reply channel]`` of each message this worker has
        taken and not finished: the one running and those taken ahead."""
        with self._ahead_lock:
            messages = [self._current, *self._ahead] if self._current else list(self._ahead)
        return [[channel, reply] for channel, content in messages
                if isinstance(reply := content.get("reply_channel"), str)]

    def _touch(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.touch()

    def _loop(self) -> None:
        backend = self.channel_backend
        failing = False
        while not self.stopping:
            try:
                batch = backend.receive_batch(self.channels, self.prefetch, self.poll_timeout)
            except Exception:
                # An outage is logged when it starts and when it ends, not
                # every second while it lasts; the backend reconnects, and the
                # loop waits a little rather than spin.
                if not failing:
                    logger.exception("Could not receive from channel backend %r; "
                                     "retrying until it answers", backend.alias)
                    failing = True
                self._stop.wait(self.poll_timeout)
                continue
            if failing:
                logger.warning("Receiving from channel backend %r again", backend.alias)
                failing = False
            if not batch:
                continue
            with self._ahead_lock:
                self._current = batch[0]
                if len(batch) > 1:
                    self._ahead.extend(batch[1:])
                    self._holding.set()
            self._touch()
            # Django closes old connections when a request starts and when
            # it ends; one message's end is the next one's start.
            self.close_old_connections()
            message = batch[0]
            while message is not None:
                self.handle(*message)
                # Stopping: what is still ahead goes back (see run).
                message = None if self.stopping else self._next_ahead()
                self._touch()

    def _next_ahead(self) -> tuple[str, dict] | None:
        with self._ahead_lock:
            if self._ahead:
                self._current = self._ahead.popleft()
                return self._current
            self._current = None
            self._holding.clear()
            return None

    def _give_back(self, *first: tuple[str, dict]) -> None:
        """Put ``first`` and the messages taken ahead back at the head of
        their channels, in the order they were taken."""
        with self._giving_back:
            with self._ahead_lock:
                messages = [*first, *self._ahead]
                self._ahead.clear()
                self._holding.clear()
                if first:
                    self._current = None
            self._touch()
            for channel, content in reversed(messages):
                try:
                    self.channel_backend.requeue(channel, content)
                except Exception:
                    logger.exception("Could not put a message back on %r; it is lost",
                                     channel)

    def _release_loop(self) -> None:
        """While messages wait ahead, watch the consumer in hand; once it has
        run ``release_after`` seconds, give them back for other workers."""
        while True:
            self._holding.wait()
            if self._finished.is_set():
                return
            running = self._running
            if running is None:  # between two consumers: the loop takes the next
                self._finished.wait(self.release_after / 10)
                continue
            left = running[1] + self.release_after - time.monotonic()
            if left > 0:
                self._finished.wait(left)
            elif self._running == running:  # the same run: it is the long one
                logger.debug("Consumer runs long; giving %d message(s) back",
                             len(self._ahead))
                self._give_back()

    def handle(self, channel: str, content: dict) -> None:
        """Run the consumer of one message. Whatever goes wrong is logged
        here, so the loop goes on to serve everybody else."""
        backend = self.channel_backend
        consumer = backend.registry.consumer_for_channel(channel)
        if consumer is None:
            logger.warning("No consumer for channel %r; message dropped", channel)
            return
        try:
            message = Message(content, channel, backend)
        except InvalidChannelName:
            # Anybody can send to a channel: a bad reply_channel must cost
            # only its own message, never the worker.
            logger.exception("Malformed message on channel %r; dropped", channel)
            return
        heartbeat = self._heartbeat
        if heartbeat is not None and heartbeat.cancelled:
            reply = content.get("reply_channel")
            if isinstance(reply, str) and reply in heartbeat.cancelled:
                # Its client was answered 503 while no worker was running.
                self.skipped += 1
                logger.debug("Skipped a message on %r: its client (%s) was answered already",
                             channel, reply)
                return
        if self.callback is not None:
            try:
                self.callback(channel, message)
            except Exception:
                logger.exception("Worker callback failed for channel %r", channel)
        self._runs += 1
        started = time.monotonic()
        self._running = (self._runs, started)
        try:
            consumer(message)
        except Message.Requeue:
            # With the messages taken ahead, so that it keeps its place.
            self._give_back((channel, content))
            # Another worker holds what this message waits for (a lock, an
            # earlier message): yield briefly instead of spinning on it.
            time.sleep(0.002)
            return
        except Exception as exc:
            self.errors += 1
            self.consumer_failed(consumer, message, exc)
            failed = True
        else:
            failed = False
        finally:
            self._running = None
            self.close_old_connections()
        finished = time.monotonic()
        self.durations.add(finished - started, finished)
        self.handled += 1
        if channel == "websocket.connect" and message.reply_channel is not None:
            # The handshake waits for this: a connect consumer that neither
            # accepted nor rejected accepts by returning. The interface server
            # keeps only the first decision, so this is harmless after one.
            try:
                message.reply_channel.send(close_message() if failed else accept_message())
            except Exception:
                logger.exception("Could not answer websocket.connect on %r",
                                 message.reply_channel.name)

    def consumer_failed(self, consumer: Callable, message: Message, exc: Exception) -> None:
        logger.error("Error in consumer %s for channel %r",
                     getattr(consumer, "__qualname__", consumer), message.channel.name,
                     exc_info=exc)

    def close_old_connections(self) -> None:
        """Close database connections that broke or outlived CONN_MAX_AGE,
        as Django does before and after each request."""
        if _database.opened:
            close_old_connections()
