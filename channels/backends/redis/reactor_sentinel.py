"""A Sentinel-managed shard for the reactor client: where its master is,
asked of the sentinels over non-blocking connections (``SENTINEL MASTER``),
without blocking the reactor.

The first sentinel that sees the master up (flagged ``master``, neither
``s_down`` nor ``o_down``: the rule of redis-py's
``Sentinel.check_master_state``, which the blocking client applies) names
it. So once the sentinels have seen a master die, none names it, even one
that has not yet heard which replica replaced it. A master demoted while up
may still be named by such a sentinel: the client then finds that it is no
longer a master (``ROLE``), counts the shard down, and asks again after the
backoff. Each question starts with the next sentinel in turn, so a stale one
cannot hold the client back.
"""

from __future__ import annotations

from typing import Any

import hiredis
from redis.sentinel import MasterNotFoundError
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint

from channels.backends.redis.hosts import SentinelService
from channels.backends.redis.resp import RespProtocol
from channels.backends.redis.sentinel import sentinel_options


class MasterQuery:
    """Asks the sentinels of ``service`` where its master is."""

    def __init__(self, reactor: Any, service: SentinelService, connect_timeout: float):
        self.reactor = reactor
        self.service = service
        options = sentinel_options(service, connect_timeout)
        self.connect_timeout = options["socket_connect_timeout"]
        self.timeout = options["socket_timeout"]
        self.auth = None
        if options.get("password"):
            self.auth = ("AUTH", options.get("username") or "default", options["password"])
        self._next = 0

    @defer.inlineCallbacks
    def master(self) -> Any:
        """A Deferred of the master's ``(host, port)``; it fails with
        ``MasterNotFoundError`` (a ``redis.ConnectionError``) if no sentinel
        names one."""
        sentinels = self.service.sentinels
        start, self._next = self._next, (self._next + 1) % len(sentinels)
        errors = []
        for turn in range(len(sentinels)):
            host, port = sentinels[(start + turn) % len(sentinels)]
            try:
                reply = yield self._ask(host, port)
            except Exception as exc:  # noqa: BLE001 (any failure: ask the next one)
                errors.append(f"{host}:{port}: {exc or type(exc).__name__}")
                continue
            state = dict(zip(reply[::2], reply[1::2], strict=True))
            flags = set(state[b"flags"].split(b","))
            if b"master" in flags and not flags & {b"s_down", b"o_down"}:
                return state[b"ip"].decode(), int(state[b"port"])
            errors.append(f"{host}:{port}: master {state[b'ip'].decode()}:"
                          f"{state[b'port'].decode()} is down")
        raise MasterNotFoundError(f"No master found for {self.service.service_name!r}: "
                                  + "; ".join(errors))

    @defer.inlineCallbacks
    def _ask(self, host: str, port: int) -> Any:
        endpoint = HostnameEndpoint(self.reactor, host, port, timeout=self.connect_timeout)
        connection = yield endpoint.connect(protocol.Factory.forProtocol(RespProtocol))
        try:
            commands = [self.auth] if self.auth else []
            commands.append(("SENTINEL", "MASTER", self.service.service_name))
            for command in commands:
                reply = yield connection.execute(hiredis.pack_command(command)).addTimeout(
                    self.timeout, self.reactor)
        finally:
            connection.transport.abortConnection()
        return reply
