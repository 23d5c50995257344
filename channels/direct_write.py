"""Bytes straight to a socket when Twisted holds none for it: the
interface server's clients (``Outbox``), and its Redis connections
(``channels.backends.redis.resp``).

``transport.write`` only buffers: it registers the socket for writability
(an ``epoll_ctl``), the reactor's next poll calls ``doWrite``, which sends,
and then unregisters it (another ``epoll_ctl``): about 30% of the
interface server's CPU in the WebSocket echo benchmark. When Twisted holds
nothing unsent for the connection, the socket may as well take the bytes
at once: nothing can be overtaken, and what it does not take goes to
Twisted, behind which any later write then queues. (Replies then leave as
each is handed over rather than together at the next poll, which broke up
the layer's batches while workers sent each reply on its own:
docs/benchmarks.rst, "Frames straight to the socket".)

Whether Twisted holds anything, and whether the transport may still be
written to, are Twisted's internals (``dataBuffer``, ``_tempDataBuffer``,
``_aborting``...): they are read here only, and tests/test_direct_write.py
fails if a Twisted upgrade renames them. A transport missing any of them is
written to the usual way.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from twisted.internet import tcp, unix

logger = logging.getLogger("channels.server")

# The transport classes whose bytes go to their socket as they are: TCP,
# and Unix sockets (whose writeSomeData also passes file descriptors, which
# this server never sends). Not TLS: ``listenSSL`` gives a TLS protocol as
# the transport (no socket), and ``startTLS`` sets ``TLS`` on a TCP one.
_PLAIN_WRITES = {tcp.Connection.writeSomeData: False, unix.Server.writeSomeData: True}


def _plain(transport: Any) -> bool:
    """Whether ``transport`` holds nothing unsent and may be written to:
    connected, neither closing (``loseConnection``, or its write side with
    ``loseWriteConnection``) nor aborted, and not TLS."""
    return (transport.connected and not transport.disconnecting and not transport._aborting
            and not transport._writeDisconnecting and not transport._writeDisconnected
            and not transport.TLS and not transport.dataBuffer
            and not transport._tempDataBuffer)


def _plain_unix(transport: Any) -> bool:
    # A file descriptor waiting to go rides on the next bytes Twisted sends.
    return _plain(transport) and not transport._sendmsgQueue


# Per transport class: its check, or None for the usual way.
_checks: dict[type, Callable[[Any], bool] | None] = {}


def _check_for(kind: type) -> Callable[[Any], bool] | None:
    if not issubclass(kind, tcp.Connection) or kind.write is not tcp.Connection.write:
        return None
    unix_socket = _PLAIN_WRITES.get(kind.writeSomeData)
    if unix_socket is None:
        return None
    return _plain_unix if unix_socket else _plain


def direct_socket(transport: Any) -> socket.socket | None:
    """The socket to write to straight away, if ``transport`` is a plain
    TCP or Unix socket transport that can be written to and Twisted holds
    nothing unsent for it; else None (write the usual way)."""
    kind = type(transport)
    try:
        check = _checks[kind]
    except KeyError:
        check = _checks[kind] = _check_for(kind)
    if check is None:
        return None
    try:
        return transport.socket if check(transport) else None
    except AttributeError:
        # Twisted renamed what is read here: the usual way from now on.
        _checks[kind] = None
        logger.warning("%s lacks a Twisted attribute that channels.direct_write "
                       "reads; writing through Twisted's buffer instead", kind.__name__,
                       exc_info=True)
        return None


def send_now(transport: Any, data: bytes) -> bytes:
    """Send what the socket takes of ``data`` at once, if ``direct_socket``
    allows; returns the rest, which the caller must write the usual way
    before anything else (its own outbox, if it has one)."""
    sock = direct_socket(transport)
    if sock is None:
        return data
    try:
        sent = sock.send(data)
    except OSError:
        # Full (BlockingIOError, ENOBUFS), or broken: Twisted's doWrite
        # meets the same error and either waits or closes the connection.
        return data
    return data[sent:] if sent else data


def write_now(transport: Any, data: bytes) -> None:
    """``transport.write(data)``, with what the socket takes at once sent
    straight away (``send_now``)."""
    rest = send_now(transport, data)
    if rest:
        transport.write(rest)
