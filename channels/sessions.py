"""Django sessions for consumers: the channel session of a connection and
the HTTP session of the browser behind it.

A channel session has no cookie to carry its key. Its key is derived from the
connection's reply channel instead, so every message of one connection finds
the same session, whichever worker runs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone
from django.utils.crypto import salted_hmac

# Name of the query parameter read when CHANNELS_SESSION_KEY_QUERY_PARAM is on.
SESSION_KEY_QUERY_PARAM = "session_key"

_SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"

# Seconds a channel session outlives the last message of its connection
# (CHANNELS_SESSION_AGE). Short, because it may carry a login
# (``transfer_user``) and nothing else ends it if the disconnect consumer
# never runs; a connection renews it with every message, keepalives
# included (every half channel EXPIRY, 30 s by default).
DEFAULT_SESSION_AGE = 300


def channel_session_age() -> float:
    return getattr(settings, "CHANNELS_SESSION_AGE", DEFAULT_SESSION_AGE)


def renew_channel_session(session: SessionBase) -> None:
    """Push the session's expiry CHANNELS_SESSION_AGE ahead, when less than
    half of it is left (so not every message costs a write): the engines
    store it with the session (the database as its expire_date, the cache
    as its timeout), and drop the session once it passes."""
    age = channel_session_age()
    now = timezone.now()
    if "_session_expiry" not in session or (
            session.get_expiry_date() - now).total_seconds() < age / 2:
        session.set_expiry(timedelta(seconds=age))


def session_store_class() -> type[SessionBase]:
    return import_module(settings.SESSION_ENGINE).SessionStore


def channel_session_key(reply_channel: str) -> str:
    """The session key of a connection: 32 lower-case hex digits, which every
    session engine accepts (the database one takes only [a-z0-9], at most 40).

    An HMAC keyed with SECRET_KEY rather than a plain hash: reply channel names
    show up in logs (``runworker -v 2``), and a key anyone could compute from
    one would also be a valid ``sessionid`` cookie.
    """
    return salted_hmac(
        "channels.sessions.channel_session_key", reply_channel, algorithm="sha256"
    ).hexdigest()[:32]


def open_channel_session(reply_channel: str) -> SessionBase:
    """Load the channel session of ``reply_channel``, creating it on first use
    (or when the old one expired) under the connection's own key."""
    if settings.SESSION_ENGINE == _SIGNED_COOKIES:
        raise ImproperlyConfigured(
            "channel_session needs a server-side SESSION_ENGINE (database, cache, "
            "cached_db or file): signed_cookies keeps the data in a cookie, and a "
            "connection's later messages carry no cookie."
        )
    key = channel_session_key(reply_channel)
    store_class = session_store_class()
    session = store_class(session_key=key)
    session.keys()  # load now: a missing or expired session drops its key
    if session.session_key is not None:
        renew_channel_session(session)
        return session
    session = store_class(session_key=key)
    if session.exists(key):
        session.delete(key)  # expired; start again under the same key
    try:
        # Created first (a session not saved yet would take a new key at
        # its first read), then given its expiry.
        session.save(must_create=True)
    except CreateError:
        # Another worker created it in the meantime; use theirs.
        session = store_class(session_key=key)
    renew_channel_session(session)
    save_if_modified(session)
    return session


def http_session_key(content: Mapping[str, Any]) -> str | None:
    """The session key a connect or request message carries: the session
    cookie, or, only when CHANNELS_SESSION_KEY_QUERY_PARAM is on, the
    ``session_key`` query parameter.

    The query parameter is off by default because URLs end up in access logs,
    proxy logs and browser history: a session key there is a login for
    anybody who reads them.
    """
    cookies = content.get("cookies")
    key = cookies.get(settings.SESSION_COOKIE_NAME) if isinstance(cookies, Mapping) else None
    if not key and getattr(settings, "CHANNELS_SESSION_KEY_QUERY_PARAM", False):
        query = content.get("query")
        values = query.get(SESSION_KEY_QUERY_PARAM) if isinstance(query, Mapping) else None
        key = values[0] if isinstance(values, list) and values else None
    return key if isinstance(key, str) and key else None


def open_http_session(content: Mapping[str, Any]) -> SessionBase | None:
    """The HTTP session named by the message, or None if it names none or
    one that does not exist (any more)."""
    key = http_session_key(content)
    if key is None:
        return None
    session = session_store_class()(session_key=key)
    session.keys()  # load now: an unknown or expired key drops to None
    return session if session.session_key is not None else None


def save_if_modified(session: SessionBase) -> None:
    """Save what a consumer changed. A session the consumer flushed has no
    key any more and is left deleted."""
    if session.modified and session.session_key is not None:
        session.save()
