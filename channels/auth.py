"""Django users for consumers, through the sessions of ``channels.sessions``.

The user is found with django.contrib.auth's own ``get_user``, so sessions
invalidated by a password change, and custom authentication backends,
behave exactly as they do for views.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, get_user
from django.contrib.auth.models import AnonymousUser
from django.contrib.sessions.backends.base import SessionBase

from channels.decorators import channel_session, http_session
from channels.message import Message
from channels.registry import Consumer

# What django.contrib.auth.login() stores in a session, and get_user() reads.
AUTH_SESSION_KEYS = (SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY)


def user_from_session(session: SessionBase | None):
    """The user logged in to ``session``, else an AnonymousUser."""
    if session is None:
        return AnonymousUser()
    # get_user() only reads request.session.
    return get_user(SimpleNamespace(session=session))


def http_session_user(func: Consumer) -> Consumer:
    """``message.http_session`` and ``message.user``, the user logged in to
    it (AnonymousUser without one). For connect and request messages."""

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        message.user = user_from_session(message.http_session)
        return func(message, *args, **kwargs)

    return http_session(inner)


def channel_session_user(func: Consumer) -> Consumer:
    """``message.channel_session`` and ``message.user``, the user that
    ``transfer_user`` logged the connection in as (AnonymousUser without
    one). For every message of a connection."""

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        message.user = user_from_session(message.channel_session)
        return func(message, *args, **kwargs)

    return channel_session(inner)


def transfer_user(func: Consumer) -> Consumer:
    """For ``websocket.connect``: log the connection in as the user of the
    browser's HTTP session, for the connection's life.

    Later messages of a connection carry no cookies, so the user's auth keys
    are copied from the HTTP session into the channel session, where
    ``channel_session_user`` finds them. An anonymous visitor leaves no auth
    keys there. Sets ``message.user``, ``message.http_session`` and
    ``message.channel_session``.
    """

    @functools.wraps(func)
    def inner(message: Message, *args, **kwargs):
        user = user_from_session(message.http_session)
        target = message.channel_session
        for key in AUTH_SESSION_KEYS:
            if user.is_authenticated and key in message.http_session:
                target[key] = message.http_session[key]
            else:
                target.pop(key, None)
        message.user = user
        return func(message, *args, **kwargs)

    return http_session(channel_session(inner))
