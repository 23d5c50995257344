"""One connection to a Redis server on a Twisted reactor, speaking RESP:
commands pipelined, replies matched to them in order. The reactor client's
shard connections (``reactor.py``) and its questions to sentinels
(``reactor_sentinel.py``) both use it."""

from __future__ import annotations

from collections import deque

import hiredis
import redis
from twisted.internet import defer, protocol
from twisted.python.failure import Failure

from channels.direct_write import write_now


class RespProtocol(protocol.Protocol):
    """One connection: commands pipelined, replies matched in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=redis.ResponseError)
        self.waiting: deque[defer.Deferred] = deque()
        self.lost = False
        self.closing = False
        # Why this end cut the connection (a server that stopped answering).
        self.silent: str | None = None

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):  # TCP, not a Unix socket
            # A small command must not wait for the answer to the last one.
            self.transport.setTcpNoDelay(True)
            # A peer that vanishes silently is found out (as shard.py does).
            self.transport.setTcpKeepAlive(True)

    def dataReceived(self, data: bytes) -> None:
        self.reader.feed(data)
        try:
            while (reply := self.reader.gets()) is not False:
                waiter = self.waiting.popleft()
                if isinstance(reply, redis.ResponseError):
                    waiter.errback(reply)
                else:
                    waiter.callback(reply)
        except hiredis.ProtocolError:
            # Not Redis talking: no later reply can be trusted.
            self.transport.abortConnection()
            return
        if self.closing and not self.waiting:
            self.transport.loseConnection()

    def close_when_idle(self) -> None:
        """Close once every command sent has its answer."""
        self.closing = True
        if not self.waiting:
            self.transport.loseConnection()

    def execute(self, packed: bytes) -> defer.Deferred:
        waiter = defer.Deferred()
        self.waiting.append(waiter)
        # At once: a command waits for nothing this reactor turn may add.
        write_now(self.transport, packed)
        return waiter

    def abort_silent(self, why: str) -> None:
        """Cut a connection whose server stopped answering: every command
        waiting on it fails with TimeoutError (the order of the replies is
        lost with the one that did not come)."""
        if self.silent is None:
            self.silent = why
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        waiting, self.waiting = self.waiting, deque()
        error = (redis.TimeoutError(self.silent) if self.silent is not None
                 else redis.ConnectionError(f"Connection lost: {reason.value}"))
        for waiter in waiting:
            waiter.errback(error)
