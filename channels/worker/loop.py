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

from channels.backends import outgoing
from channels.backends.base import BaseChannelBackend
from channels.exceptions import ChannelBackendUnavailable, InvalidChannelName
from channels.message import Message
from channels.messages.websocket import accept_message, close_message
from channels.worker import heartbeat as heartbeats
from channels.worker import metrics as worker_metrics
from channels.worker.durations import Durations
from channels.worker.take_ahead import PREFETCH, TakeAhead

logger = logging.getLogger("channels.worker")

# How long one blocking receive waits before the loop checks for a stop.
POLL_TIMEOUT = 1.0

# When a consumer runs long with messages taken ahead of it
# (channels.worker.take_ahead), after this many seconds they go back to the
# head of their channels, in order, for the next free worker. Longer than
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

    ``prefetch`` is the most waiting messages one receive may take; it
    takes fewer when its recent messages ran long (``take_ahead``), and 1
    takes them one at a time. ``max_messages`` (None: no limit) ends
    ``run()`` once that many messages were taken and run, so a process
    manager can replace the process (``runworker --max-messages``).

    While it runs, it is counted in its process's heartbeat
    (``channels.worker.heartbeat``), on a backend that keeps them.
    """

    # The longest a stop() waits for the loop to notice it while idle.
    poll_timeout = POLL_TIMEOUT
    release_after = RELEASE_AFTER

    def __init__(self, channel_backend: BaseChannelBackend,
                 callback: Callable[[str, Message], None] | None = None,
                 channels: Iterable[str] | None = None, prefetch: int = PREFETCH,
                 max_messages: int | None = None):
        if not isinstance(prefetch, int) or prefetch < 1:
            raise ValueError(f"prefetch must be a positive integer, not {prefetch!r}")
        if max_messages is not None and (not isinstance(max_messages, int) or max_messages < 1):
            raise ValueError(f"max_messages must be a positive integer or None, "
                             f"not {max_messages!r}")
        self.channel_backend = channel_backend
        self.callback = callback
        registry = channel_backend.registry
        self.channels = list(channels) if channels is not None else registry.all_channel_names()
        self.prefetch = prefetch
        self.take_ahead = TakeAhead(prefetch)
        self.max_messages = max_messages
        self.on_limit: Callable[[], None] | None = None
        # Called once run() has written the heartbeat that counts it.
        self.on_started: Callable[[], None] | None = None
        # Messages taken from the backend so far (for max_messages).
        self.taken = 0
        self._failing = False
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
        # Messages of this batch that have run, whose consumers' sends may
        # still be held (channels.backends.outgoing): in hand until the
        # batch's flush, so that a worker killed before it leaves their
        # clients to be answered (heartbeats).
        self._replying: list[tuple[str, dict]] = []
        self._heartbeat: heartbeats.WorkerHeartbeat | None = None
        # Consumers run (errors included), those that raised, and messages
        # skipped because their client was answered already.
        self.handled = 0
        self.errors = 0
        self.skipped = 0
        # How long the consumers took (the heartbeat's busy and slowest).
        self.durations = Durations(channel_backend.heartbeat_interval)
        # Its figures for the Prometheus metrics, once they are on.
        self._stats: worker_metrics.WorkerStats | None = None
        self._counted: worker_metrics.WorkerMetrics | None = None

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
        """SIGTERM, SIGINT and SIGHUP stop it as ``stop()`` does: a process
        manager that restarts it on SIGHUP thereby reloads it."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._stop_on_signal)

    def limit_reached(self) -> bool:
        """Whether it has taken its ``max_messages`` and should stop. With
        ``on_limit`` set, that is called instead, once, and the worker goes
        on without a limit (the supervisor stops it once its replacement
        runs)."""
        if self.max_messages is None or self.taken < self.max_messages:
            return False
        if self.on_limit is None:
            return True
        self.max_messages = None
        self.on_limit()
        return False

    def room(self, wanted: int) -> int:
        """How many of ``wanted`` messages it may still take."""
        if self.max_messages is None:
            return wanted
        return max(0, min(wanted, self.max_messages - self.taken))

    def attach(self) -> None:
        """Count this worker in its process's heartbeat, on a backend that
        keeps them, and in its metrics (``channels_worker_threads``), once
        they are on."""
        if self.channel_backend.keeps_heartbeats:
            self._heartbeat = heartbeats.attach(self)
        self._counted = worker_metrics.active
        if self._counted is not None:
            self._counted.loop_started()

    def detach(self) -> None:
        """It holds nothing any more: take it out of the heartbeat and the
        metrics."""
        if self._heartbeat is not None:
            heartbeats.detach(self, self._heartbeat)
            self._heartbeat = None
        if self._counted is not None:
            self._counted.loop_stopped()
            self._counted = None

    def started(self) -> None:
        if self.on_started is not None:
            self.on_started()

    def run(self) -> None:
        self._finished.clear()
        self.attach()
        self.started()
        releaser = None
        if self.prefetch > 1:
            releaser = threading.Thread(target=self._release_loop, daemon=True,
                                        name="channels-worker-releaser")
            releaser.start()
        try:
            with outgoing.holding():
                self._loop()
        finally:
            # Stopped with messages in hand: they go back, not away.
            self._give_back()
            self._finished.set()
            self._holding.set()  # wakes the releaser to end
            if releaser is not None:
                releaser.join()
            self.detach()

    def in_hand(self) -> list[list[str]]:
        """``[channel, reply channel]`` of each message this worker has
        taken and not finished: those whose replies it may still hold, the
        one running and those taken ahead."""
        with self._ahead_lock:
            messages = [*self._replying, *([self._current] if self._current else ()),
                        *self._ahead]
        return [[channel, reply] for channel, content in messages
                if isinstance(reply := content.get("reply_channel"), str)]

    def _touch(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.touch()

    def receive(self, count: int) -> list[tuple[str, dict]]:
        """Up to ``count`` waiting messages, waiting up to ``poll_timeout``
        for the first; none while the backend cannot be reached. Those
        returned count as taken."""
        backend = self.channel_backend
        try:
            batch = self._receive_batch(count)
        except ChannelBackendUnavailable as exc:
            # The backend logs an outage, once per server, when it starts
            # and when it ends; it reconnects, and the loop waits a little
            # rather than spin.
            logger.debug("Could not receive from channel backend %r: %s", backend.alias, exc)
            self._stop.wait(self.poll_timeout)
            return []
        except Exception:
            # Anything else once, when it starts and when it ends.
            if not self._failing:
                logger.exception("Could not receive from channel backend %r; "
                                 "retrying until it answers", backend.alias)
                self._failing = True
            self._stop.wait(self.poll_timeout)
            return []
        if self._failing:
            logger.warning("Receiving from channel backend %r again", backend.alias)
            self._failing = False
        self.taken += len(batch)
        return batch

    def _loop(self) -> None:
        while not self.stopping and not self.limit_reached():
            batch = self.receive(self.room(self.take_ahead.wanted()))
            if not batch:
                continue
            started = time.monotonic()
            ran = 0
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
                ran += 1
                # Stopping: what is still ahead goes back (see run).
                message = None if self.stopping else self._next_ahead()
                self._touch()
            self.take_ahead.ran(ran, time.monotonic() - started)
            # What the batch's consumers sent goes, in one call per shard,
            # before the loop waits for more (channels.backends.outgoing).
            outgoing.flush()
            with self._ahead_lock:
                self._replying.clear()
            self._touch()

    def take(self, message: tuple[str, dict]) -> None:
        """``message`` is this worker's to run next (``serve``): counted as
        in hand from now on."""
        with self._ahead_lock:
            self._current = message
        self._touch()

    def serve(self, channel: str, content: dict) -> None:
        """Run one message handed to this worker by another's receive (see
        ``take``), between the database checks Django makes around a
        request."""
        self.close_old_connections()
        try:
            with outgoing.holding():
                self.handle(channel, content)
        finally:
            with self._ahead_lock:
                self._current = None
            self._touch()

    def _receive_batch(self, count: int) -> list[tuple[str, dict]]:
        """The next batch; with metrics on, each message's age counted as
        it is taken (channels_message_age_seconds)."""
        backend = self.channel_backend
        stats = self._metrics()
        if stats is None:
            return backend.receive_batch(self.channels, count, self.poll_timeout)
        aged = backend.receive_batch_aged(self.channels, count, self.poll_timeout)
        for channel, _, age in aged:
            if age is not None:
                # Hosts' clocks may differ by a little.
                stats.channel(channel).age.observe(max(age, 0.0))
        return [(channel, content) for channel, content, _ in aged]

    def _metrics(self) -> worker_metrics.WorkerStats | None:
        """This worker's figures, once the process's metrics are on."""
        if self._stats is None and worker_metrics.active is not None:
            self._stats = worker_metrics.active.new_worker()
        return self._stats

    def _next_ahead(self) -> tuple[str, dict] | None:
        with self._ahead_lock:
            if self._current is not None:
                self._replying.append(self._current)
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
        stats = self._metrics()
        if stats is not None:
            counted = stats.channel(channel)
            counted.duration.observe(finished - started)
            if failed:
                counted.error += 1
            else:
                counted.ok += 1
        if channel == "websocket.connect" and message.reply_channel is not None:
            # The handshake waits for this: a connect consumer that neither
            # accepted nor rejected accepts by returning. The interface server
            # keeps only the first decision, so this is harmless after one.
            try:
                message.reply_channel.send(close_message() if failed else accept_message())
            except ChannelBackendUnavailable:
                pass  # an outage: the backend logs it once, and counts what it cost
            except Exception:
                logger.exception("Could not answer websocket.connect on %r",
                                 message.reply_channel.name)

    def consumer_failed(self, consumer: Callable, message: Message, exc: Exception) -> None:
        if isinstance(exc, ChannelBackendUnavailable):
            # Its reply could not be sent for an outage, which the backend
            # logs once, with the count of messages it cost: no traceback
            # per message.
            logger.debug("Consumer %s for channel %r met an outage: %s",
                         getattr(consumer, "__qualname__", consumer), message.channel.name, exc)
            return
        logger.error("Error in consumer %s for channel %r",
                     getattr(consumer, "__qualname__", consumer), message.channel.name,
                     exc_info=exc)

    def close_old_connections(self) -> None:
        """Close database connections that broke or outlived CONN_MAX_AGE,
        as Django does before and after each request."""
        if _database.opened:
            close_old_connections()
