"""Django sessions for consumers: the channel session of a connection and
the HTTP session of the browser behind it.

A channel session has no cookie to carry its key. Its key is derived from the
connection's reply channel instead, so every message of one connection finds
the same session, whichever worker runs it. It is written only when a
consumer puts something in it, and it ends with the connection: after the
disconnect has run, no message of the connection creates it again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.sessions.backends.base import CreateError, SessionBase, UpdateError
from django.core.exceptions import ImproperlyConfigured
from django.utils.crypto import salted_hmac

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

logger = logging.getLogger("channels.sessions")

# Name of the query parameter read when CHANNELS_SESSION_KEY_QUERY_PARAM is on.
SESSION_KEY_QUERY_PARAM = "session_key"

# A connection is known to have closed for this many times the backend's
# EXPIRY after its disconnect ran: its messages sent before then have run or
# expired by that time (each waits at most EXPIRY in a channel; the second
# covers one taken ahead or put back).
CLOSED_MARK_EXPIRIES = 2

_SIGNED_COOKIES = "django.contrib.sessions.backends.signed_cookies"


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


def load_channel_session(reply_channel: str) -> tuple[SessionBase, bool]:
    """The channel session of ``reply_channel``'s connection, and whether
    it exists in the store. One that does not (not created yet, ended, or
    expired) comes back empty under the connection's key, and nothing is
    written unless a consumer puts something in it (``save_channel_session``):
    a message that only reads, such as a keepalive, never creates one."""
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
        return session, True
    session = store_class(session_key=key)
    session.clear()  # empty, and keeps the key: clear() loads nothing
    session.modified = False
    return session, False


def save_channel_session(session: SessionBase, existed: bool, backend: BaseChannelBackend,
                         reply_channel: str) -> None:
    """Save what a consumer changed in a channel session from
    ``load_channel_session``.

    A session the consumer flushed has no key any more and stays deleted;
    one it emptied is deleted (an empty session is the same as none). A
    session that did not exist is created only if the connection is not
    known to have closed (``connection_closed``): a message that was on its
    way when the connection's disconnect ran must not leave a session
    behind. One that existed and was deleted meanwhile (the disconnect, run
    at the same moment by another worker) is not written again by the
    database and file engines; with the cache engine, ``@linearize`` or
    ``@enforce_ordering`` on both consumers rules the race out.
    """
    if session.session_key is None or not session.modified:
        return
    if not session.keys():
        if existed:
            session.delete()
        return
    if existed:
        try:
            session.save()
        except UpdateError:
            logger.debug("Channel session of %r deleted while a consumer ran; not saved",
                         reply_channel)
        return
    if connection_closed(backend, reply_channel):
        logger.debug("Channel session of %r not created: its connection has closed",
                     reply_channel)
        return
    try:
        session.save(must_create=True)
    except CreateError:
        # An expired session under the key, or one another worker has just
        # created: these changes replace it, as any two saves of a session do.
        session.save()


def end_channel_session(backend: BaseChannelBackend, reply_channel: str) -> None:
    """After the consumer of a connection's last message (its disconnect):
    mark the connection closed, then delete its session. In that order, so
    that a consumer that loads the session in between cannot create it
    again; but deleted even if the mark fails (the backend down)."""
    try:
        backend.group_add(_closed_group(reply_channel), reply_channel,
                          CLOSED_MARK_EXPIRIES * backend.expiry)
    finally:
        session_store_class()().delete(channel_session_key(reply_channel))


def connection_closed(backend: BaseChannelBackend, reply_channel: str) -> bool:
    """Whether ``end_channel_session`` ran for this connection (lately: see
    CLOSED_MARK_EXPIRIES)."""
    return bool(backend.group_channels(_closed_group(reply_channel)))


def _closed_group(reply_channel: str) -> str:
    """The mark of a closed connection: a group with the connection as its
    one member, added with an expiry. Every backend keeps expiring
    memberships already, and drops a group with its last member, so the
    mark costs nothing once it has served."""
    return f"channels.closed.{channel_session_key(reply_channel)}"


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
    """Save what a consumer changed in an HTTP session. A session the
    consumer flushed has no key any more and is left deleted."""
    if session.modified and session.session_key is not None:
        session.save()
