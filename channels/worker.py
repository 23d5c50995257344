"""The loop that runs consumers."""

from __future__ import annotations

import fnmatch
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable

from django.db import close_old_connections

from channels.backends.base import BaseChannelBackend
from channels.exceptions import InvalidChannelName
from channels.message import Message

logger = logging.getLogger("channels.worker")

# How long one blocking receive waits before the loop checks for a stop.
POLL_TIMEOUT = 1.0


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
    """

    # The longest a stop() waits for the loop to notice it while idle.
    poll_timeout = POLL_TIMEOUT

    def __init__(self, channel_backend: BaseChannelBackend,
                 callback: Callable[[str, Message], None] | None = None,
                 channels: Iterable[str] | None = None):
        self.channel_backend = channel_backend
        self.callback = callback
        registry = channel_backend.registry
        self.channels = list(channels) if channels is not None else registry.all_channel_names()
        self._stop = threading.Event()
        self._signalled = False

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
        backend = self.channel_backend
        failing = False
        while not self.stopping:
            try:
                channel, content = backend.receive_many_blocking(self.channels, self.poll_timeout)
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
            if channel is not None:
                self.handle(channel, content)

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
        if self.callback is not None:
            try:
                self.callback(channel, message)
            except Exception:
                logger.exception("Worker callback failed for channel %r", channel)
        self.close_old_connections()
        try:
            consumer(message)
        except Message.Requeue:
            self.requeue(channel, content)
            return
        except Exception as exc:
            self.consumer_failed(consumer, message, exc)
            decision = {"close": True}
        else:
            decision = {"accept": True}
        finally:
            self.close_old_connections()
        if channel == "websocket.connect" and message.reply_channel is not None:
            # The handshake waits for this: a connect consumer that neither
            # accepted nor rejected accepts by returning. The interface server
            # keeps only the first decision, so this is harmless after one.
            try:
                message.reply_channel.send(decision)
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
        close_old_connections()

    def requeue(self, channel: str, content: dict) -> None:
        try:
            self.channel_backend.requeue(channel, content)
        except Exception:
            logger.exception("Could not requeue message on %r; it is lost", channel)
        # Another worker holds what this message waits for (a lock, an
        # earlier message): yield briefly instead of spinning on it.
        time.sleep(0.002)
