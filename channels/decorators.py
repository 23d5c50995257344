"""Decorators for consumers: routing, sessions, and one-at-a-time, in-order
processing of a connection's messages.

Stacking order matters for the last two: ``@linearize`` and
``@enforce_ordering`` go above (outside) every session decorator, so that a
connection's channel session is read after its lock is taken and saved
before the lock is released. ``@channel_session`` and the decorators built
on it refuse the other order.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

from channels.backends import DEFAULT_CHANNEL_BACKEND, outgoing
from channels.exceptions import ChannelFull
from channels.message import Message
from channels.names import validate_name
from channels.registry import Consumer, decorated
from channels.sessions import (
    connection_closed,
    end_channel_session,
    load_channel_session,
    open_http_session,
    save_channel_session,
    save_if_modified,
)

logger = logging.getLogger("channels.decorators")

# A lock outlives its consumer only when a worker died holding it; then the
# connection's next messages wait (requeued) until it expires.
LOCK_EXPIRY = 30.0

# How long a worker waits for a busy connection's lock before it requeues
# the message. Most locks are held for one short consumer run; a requeued
# message sits at the head of its channel, where it holds up the messages of
# every other connection behind it, so a short wait in one worker is cheaper.
LOCK_WAIT = 0.05

# How long enforce_ordering holds back a message while an earlier one of its
# connection is missing, before it gives the earlier one up as lost.
ORDER_MAX_WAIT = 5.0

# Where enforce_ordering keeps its state in the channel session.
ORDER_SESSION_KEY = "__channels_order__"

# A connection's last message: once its consumer has run, the connection's
# channel session is deleted for good (see channel_session).
CLOSING_CHANNELS = frozenset({"websocket.disconnect", "http.disconnect"})

# Set on consumers wrapped by linearize/enforce_ordering (functools.wraps
# carries it up through outer decorators) to catch a wrong stacking order.
_LOCKED = "_channels_takes_lock"


def consumer(
    *channels: str, alias: str = DEFAULT_CHANNEL_BACKEND
) -> Callable[[Consumer], Consumer]:
    """Route ``channels`` to the decorated function on backend ``alias``.

    Put decorated consumers in an app's ``consumers.py``: it is imported when
    Django starts, so workers know them without a ROUTING entry.
    """
    if not channels:
        raise TypeError("@consumer needs at least one channel name")
    for name in channels:
        validate_name(name)

    def register(func: Consumer) -> Consumer:
        decorated.append((alias, channels, func))
        return func

    return register


def _qualname(func: Callable) -> str:
    return getattr(func, "__qualname__", repr(func))


def _reply_channel_name(message: Message, decorator: str) -> str:
    if message.reply_channel is None:
        raise ValueError(
            f"@{decorator} needs messages that carry a reply_channel; this one on "
            f"{message.channel.name!r} has none"
        )
    return message.reply_channel.name


def channel_session(func: Consumer) -> Consumer:
    """Give the consumer ``message.channel_session``: a Django session that
    lives as long as the connection (keyed by its reply channel), for state
    that later messages of the same connection need.

    It is saved if modified, also when the consumer raises, and created
    only then. After a disconnect (``CLOSING_CHANNELS``) has run, unless it
    was requeued, the session is deleted and the connection marked closed,
    so that a message of it that runs later (a keepalive sent just before)
    leaves no session behind (``channels.sessions.save_channel_session``).

    Each message renews it for CHANNELS_SESSION_AGE (300 s), so that a
    connection whose disconnect never runs leaves nothing valid for long;
    route ``websocket.keepalive`` (with the server's WEBSOCKET_KEEPALIVE on)
    to a consumer with this decorator to keep an idle connection's session.
    """
    if getattr(func, _LOCKED, False):
        raise ImproperlyConfigured(
            f"{_qualname(func)}: put @linearize / @enforce_ordering above the "
            f"session decorators, so the channel session is read after the "
            f"connection's lock is taken and saved before it is released"
        )

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        if hasattr(message, "channel_session"):  # opened by an outer decorator
            return func(message, *args, **kwargs)
        reply = _reply_channel_name(message, "channel_session")
        session, existed = load_channel_session(reply)
        message.channel_session = session
        requeued = False
        try:
            return func(message, *args, **kwargs)
        except Message.Requeue:
            requeued = True  # it runs again later: the connection goes on until then
            raise
        finally:
            del message.channel_session
            backend = message.channel_backend
            if message.channel.name in CLOSING_CHANNELS and not requeued:
                end_channel_session(backend, reply)
            else:
                save_channel_session(session, existed, backend, reply)

    return inner


def http_session(func: Consumer) -> Consumer:
    """Give the consumer ``message.http_session``: the browser's Django
    session, from the session cookie of a ``websocket.connect`` or
    ``http.request`` message; None when there is none.

    Later WebSocket messages carry no cookies; copy what they need into the
    channel session on connect (see ``channels.auth.transfer_user``).
    """

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        if hasattr(message, "http_session"):
            return func(message, *args, **kwargs)
        session = open_http_session(message.content)
        message.http_session = session
        try:
            return func(message, *args, **kwargs)
        finally:
            del message.http_session
            if session is not None:
                save_if_modified(session)

    return inner


def _check_expiry(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ValueError(f"{name} must be a positive number of seconds, not {value!r}")


def _check_wait(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")


def _pauses(wait: float):
    """Sleep in growing steps (1 ms to 10 ms) for up to ``wait`` seconds,
    yielding after each one."""
    deadline = time.monotonic() + wait
    pause = 0.001
    while (remaining := deadline - time.monotonic()) > 0:
        time.sleep(min(pause, remaining))
        yield
        pause = min(pause * 2, 0.01)


def _wait_for_lock(backend, name: str, expiry: float, wait: float) -> str | None:
    for _ in _pauses(wait):
        token = backend.lock_channel(name, expiry)
        if token is not None:
            return token
    return None


def linearize(func: Consumer | None = None, *, expiry: float = LOCK_EXPIRY,
              wait: float = LOCK_WAIT):
    """Never run two consumers for the same connection at once.

    Takes the backend lock named by the message's reply channel for the
    consumer's run. If another worker holds it, this worker waits up to
    ``wait`` seconds for it, then requeues the message at the head of its
    channel, so it keeps its place in line and runs once the lock is free.
    The lock expires after ``expiry`` seconds, so a worker that dies holding
    it delays the connection but cannot wedge it.

    Use as ``@linearize`` or ``@linearize(expiry=..., wait=...)``; ``expiry``
    must be longer than the consumer ever runs.
    """
    _check_expiry("linearize expiry", expiry)
    _check_wait("linearize wait", wait)
    if func is None:
        return functools.partial(linearize, expiry=expiry, wait=wait)

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        if getattr(message, "_channels_lock", None):  # an outer decorator holds it
            return func(message, *args, **kwargs)
        name = _reply_channel_name(message, "linearize")
        backend = message.channel_backend
        token = backend.lock_channel(name, expiry) or _wait_for_lock(
            backend, name, expiry, wait)
        if token is None:
            raise Message.Requeue()
        message._channels_lock = token
        try:
            return func(message, *args, **kwargs)
        finally:
            del message._channels_lock
            # What it sent goes before the lock does: the connection's next
            # message, run by another worker once it is free, must not
            # overtake it.
            outgoing.flush()
            if not backend.unlock_channel(name, token):
                logger.warning(
                    "The lock of %r expired while %s ran (more than %s s); other "
                    "messages of the connection may have run at the same time",
                    name, _qualname(func), expiry,
                )

    setattr(inner, _LOCKED, True)
    return inner


class _Early(Message.Requeue):
    """A numbered message whose predecessor has not run yet."""


def enforce_ordering(func: Consumer | None = None, *, max_wait: float = ORDER_MAX_WAIT,
                     expiry: float = LOCK_EXPIRY, wait: float = LOCK_WAIT):
    """Run one connection's numbered messages in the order the client sent
    them, even when several workers take from the channel.

    Interface servers number each connection's messages (``order``:
    ``websocket.connect`` is 0, then each ``websocket.receive``, then
    ``websocket.disconnect``). The next number expected is kept in the
    channel session, under the connection's lock (this implies
    ``@linearize`` and ``@channel_session``). A message that arrives early
    waits for its predecessor: as for a busy lock, the worker first waits up
    to ``wait`` seconds for the predecessor to run elsewhere, then sends the
    message again to the back of its channel (to the head if the channel is
    full), behind the predecessor.

    A predecessor can be lost for good (it expired, or a worker died running
    it). So an early message waits at most ``max_wait`` seconds, counted from
    the first time one was seen early; then the numbers below the lowest one
    seen early are given up (logged as a warning on ``channels.decorators``)
    and processing goes on from there. A message that turns up after it was
    given up is dropped, with a warning, rather than run out of order.

    A consumer that raises still counts as having run its message. Messages
    without ``order`` (keepalives) just run under the lock.
    """
    _check_expiry("enforce_ordering max_wait", max_wait)
    _check_expiry("enforce_ordering expiry", expiry)
    _check_wait("enforce_ordering wait", wait)
    if func is None:
        return functools.partial(enforce_ordering, max_wait=max_wait, expiry=expiry,
                                 wait=wait)
    if getattr(func, _LOCKED, False):
        raise ImproperlyConfigured(
            f"{_qualname(func)}: @enforce_ordering already takes the connection's "
            f"lock; remove the @linearize below it"
        )

    @functools.wraps(func)
    def ordered(message: Message, *args, **kwargs):
        order = message.content.get("order")
        if order is None:
            return func(message, *args, **kwargs)
        if isinstance(order, bool) or not isinstance(order, int) or order < 0:
            raise ValueError(f"message 'order' must be an int >= 0, not {order!r}")
        session = message.channel_session
        state = session.get(ORDER_SESSION_KEY) or {}
        # A connect consumer without this decorator leaves no state; the
        # handshake guarantees connect (0) ran before any numbered message.
        expected = state.get("next", 0 if order == 0 else 1)
        reply = message.reply_channel.name
        if order < expected:
            logger.warning("Dropped message %d of %r: the connection is past it "
                           "(next is %d)", order, reply, expected)
            return None
        if order > expected:
            if not state and connection_closed(message.channel_backend, reply):
                # Its disconnect has run, which ended the session: nothing
                # will come before it any more.
                logger.warning("Dropped message %d of %r: its connection has closed",
                               order, reply)
                return None
            now = time.time()
            since = state.get("waiting_since", now)
            # The lowest early number seen: requeues can reorder early
            # messages, and none that was seen may be skipped.
            lowest = min(order, state.get("lowest_early", order))
            if now - since < max_wait:
                waiting = {"next": expected, "waiting_since": since, "lowest_early": lowest}
                if waiting != state:  # save only news, not every retry
                    session[ORDER_SESSION_KEY] = waiting
                raise _Early()
            logger.warning("Gave up on message(s) %d to %d of %r after waiting %.1f s "
                           "(lost or expired)", expected, lowest - 1, reply, now - since)
            if order != lowest:
                session[ORDER_SESSION_KEY] = {"next": lowest}
                raise _Early()
        requeued = False
        try:
            return func(message, *args, **kwargs)
        except Message.Requeue:
            requeued = True
            raise
        finally:
            if not requeued:
                session[ORDER_SESSION_KEY] = {"next": order + 1}

    locked = linearize(channel_session(ordered), expiry=expiry, wait=wait)

    @functools.wraps(locked)
    def waiting(message: Message, *args, **kwargs):
        try:
            return locked(message, *args, **kwargs)
        except _Early:
            if getattr(message, "_channels_lock", None):
                raise  # an outer @linearize holds the lock: waiting cannot help
        # Retry with the lock released, so another worker can run the
        # predecessor.
        for _ in _pauses(wait):
            try:
                return locked(message, *args, **kwargs)
            except _Early:
                pass
        # No worker ran it meanwhile: it is behind this message in the
        # channel, or a worker took it ahead with early messages of its own.
        # So to the back of the channel, not the head, where the workers
        # would take the early messages first again and again.
        try:
            message.channel.send(message.content, immediately=True)
        except ChannelFull:
            raise Message.Requeue() from None
        return None

    return waiting
