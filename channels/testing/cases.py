"""``ChannelTestCase``: run consumers in tests as a worker runs them."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

from django.core.signals import request_finished, request_started, setting_changed
from django.db import close_old_connections
from django.test import TestCase

from channels.backends import (
    DEFAULT_CHANNEL_BACKEND,
    RESET_ON_SETTINGS,
    accepted_options,
    backend_settings,
    channel_backends,
)
from channels.backends.base import DEFAULT_CAPACITY, HTTP_REPLY_CHANNELS, BaseChannelBackend
from channels.backends.memory import InMemoryChannelBackend
from channels.message import Message
from channels.worker.loop import Worker


def memory_backend_for(alias: str, config: dict) -> InMemoryChannelBackend:
    """An empty in-memory backend with the routing and limits of ``config``
    (options only a networked backend knows, like HOSTS, are left out).

    HTTP reply channels hold ``CAPACITY`` messages here, not the 4 that
    servers give them: a test reads a response after its consumer has sent
    all of it, where a server reads while it is sent."""
    accepted = accepted_options(InMemoryChannelBackend)
    options = {key.lower(): value for key, value in config.items()
               if key != "BACKEND" and key.lower() in accepted}
    capacities = options.get("channel_capacity") or {}
    if isinstance(capacities, Mapping):  # else the backend says what is wrong
        options["channel_capacity"] = capacities = dict(capacities)
        capacities.setdefault(HTTP_REPLY_CHANNELS, options.get("capacity", DEFAULT_CAPACITY))
    return InMemoryChannelBackend(alias=alias, **options)


@contextlib.contextmanager
def isolated_channel_backends() -> Iterator[None]:
    """Use a fresh in-memory backend for every alias of CHANNEL_BACKENDS,
    also after ``override_settings`` changes them, and put the previous
    backends back on exit."""
    previous: dict[str, BaseChannelBackend | None] = {}

    def install(**kwargs: Any) -> None:
        if kwargs.get("setting", "CHANNEL_BACKENDS") not in RESET_ON_SETTINGS:
            return
        for alias, config in backend_settings().items():
            replaced = channel_backends.set(alias, memory_backend_for(alias, config))
            previous.setdefault(alias, replaced)

    install()
    # Connected after channels.backends' own receiver, so it runs after the
    # reset that a settings change causes.
    setting_changed.connect(install)
    try:
        yield
    finally:
        setting_changed.disconnect(install)
        for alias in set(backend_settings()) | set(previous):
            channel_backends.set(alias, previous.get(alias))


@contextlib.contextmanager
def _connections_left_open() -> Iterator[None]:
    """Keep Django's request signals from closing database connections, as
    its test client does: a consumer running Django's request handling
    (http.request) would otherwise close the connection that holds the
    test's transaction."""
    signals = (request_started, request_finished)
    for signal in signals:
        signal.disconnect(close_old_connections)
    try:
        yield
    finally:
        for signal in signals:
            signal.connect(close_old_connections)


class _TestWorker(Worker):
    """Runs a consumer exactly as the production worker does, except that it
    leaves database connections to the test's transaction and remembers a
    consumer's exception so the test can raise it."""

    def __init__(self, channel_backend: BaseChannelBackend):
        super().__init__(channel_backend, channels=())
        self.error: Exception | None = None

    def close_old_connections(self) -> None:
        # Closing here would end the transaction that wraps each test.
        pass

    def consumer_failed(self, consumer, message, exc):
        super().consumer_failed(consumer, message, exc)
        self.error = exc


class ChannelTestCase(TestCase):
    """A Django ``TestCase`` for consumers.

    Every test starts with empty in-memory channel backends for each alias of
    CHANNEL_BACKENDS (with its ROUTING and limits), so nothing leaks between
    tests and no Redis is needed. ``send_and_consume`` runs a consumer through
    the worker's own code path: a ``websocket.connect`` consumer that returns
    accepts the connection, a requeued message goes back on its channel.
    ``get_next_message`` shows what consumers sent.
    """

    @classmethod
    def _pre_setup(cls) -> None:
        # Here rather than in setUp, so a subclass's setUp that forgets to
        # call super() still gets isolated backends.
        super()._pre_setup()
        cls._channels_isolation = contextlib.ExitStack()
        cls._channels_isolation.enter_context(isolated_channel_backends())

    def _post_teardown(self) -> None:
        try:
            type(self)._channels_isolation.close()
        finally:
            super()._post_teardown()

    def get_backend(self, alias: str = DEFAULT_CHANNEL_BACKEND) -> BaseChannelBackend:
        return channel_backends[alias]

    def send(self, channel: str, content: dict[str, Any] | None = None,
             alias: str = DEFAULT_CHANNEL_BACKEND) -> None:
        self.get_backend(alias).send(channel, content or {})

    def consume(self, channel: str, alias: str = DEFAULT_CHANNEL_BACKEND,
                require: bool = True) -> dict[str, Any] | None:
        """Take the next message from ``channel`` and run its consumer as a
        worker would. A consumer's exception is raised here, after the worker
        handled it (logged it, rejected a connect). Returns the message's
        content, or None when there was none and ``require`` is false."""
        backend = self.get_backend(alias)
        if backend.registry.consumer_for_channel(channel) is None:
            raise AssertionError(f"No consumer is routed to channel {channel!r}")
        _, content = backend.receive_many([channel])
        if content is None:
            if require:
                raise AssertionError(f"No message on channel {channel!r} to consume")
            return None
        worker = _TestWorker(backend)
        with _connections_left_open():
            # As the worker runs it: what it sends goes once it returns.
            worker.serve(channel, content)
        if worker.error is not None:
            raise worker.error
        return content

    def send_and_consume(self, channel: str, content: dict[str, Any] | None = None,
                         alias: str = DEFAULT_CHANNEL_BACKEND) -> dict[str, Any]:
        """Send a message and run its consumer."""
        self.send(channel, content, alias)
        return self.consume(channel, alias)

    def get_next_message(self, channel: str, require: bool = False,
                         alias: str = DEFAULT_CHANNEL_BACKEND) -> Message | None:
        """The next message on ``channel`` (taking it off), or None; with
        ``require``, a missing message fails the test."""
        backend = self.get_backend(alias)
        _, content = backend.receive_many([channel])
        if content is None:
            if require:
                raise AssertionError(f"Expected a message on channel {channel!r}, got none")
            return None
        return Message(content, channel, backend)
