"""One shard's connection of the reactor client (``reactor.py``): opened at
first use and again after a loss, over ``resp.py``, with every command's
answer awaited for a bounded time, so that a server that stops answering
(a stopped process, a host gone without a word) is found out as one that
closed its connections is.
"""

from __future__ import annotations

import time
from typing import Any

import hiredis
import redis
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.python.failure import Failure

from channels.backends.redis import scripts
from channels.backends.redis.reactor_sentinel import MasterQuery
from channels.backends.redis.resp import RespProtocol
from channels.backends.redis.shard import (
    COMMAND_TIMEOUT,
    CONNECT_TIMEOUT,
    PING,
    PROBE,
    READ_TIMEOUT,
    REFUSED,
    Shard,
)
from channels.exceptions import ChannelBackendUnavailable

# A command's deadline that fires this late means that this process was not
# running (a machine short of CPU): the server gets its time again, once,
# rather than be taken for silent for this process's delay.
STALL = 0.25

# Answers of a master that a failover demoted: on a Sentinel-managed shard,
# the sign to ask the sentinels again.
DEMOTED = ("READONLY", "UNBLOCKED")


class ShardConnection:
    """A connection to one shard, opened at first use and again after a
    loss. Failures go into the shard's up/down state, which the blocking
    backend shares, so that both stop trying a dead server at once.

    On a Sentinel-managed shard each connection goes to the master the
    sentinels name (``reactor_sentinel.py``), or that they announced
    (``sentinel.py``), checked with ``ROLE``; a connection lost, or an
    answer of a demoted master, makes the next one ask them again, and one
    to a master replaced by an announced one closes once its last answer is
    in."""

    def __init__(self, reactor: Any, shard: Shard, clock: Any = None):
        self.reactor = reactor
        self.clock = reactor if clock is None else clock
        self.shard = shard
        self._protocol: RespProtocol | None = None
        self._connecting: list[defer.Deferred] | None = None
        # Closed on purpose: a command cut off then is no sign of an outage.
        self.closed = False
        # The server's id of the open connection, for CLIENT UNBLOCK.
        self.client_id: int | None = None
        options = shard.address.options
        self._connect_timeout = options.get("socket_connect_timeout", CONNECT_TIMEOUT)
        self._master_query = None
        if shard.sentinels is not None:
            self._master_query = MasterQuery(reactor, shard.address.sentinel,
                                             self._connect_timeout)
            shard.sentinels.subscribe(self._heard)
        self._master: tuple[str, int] | None = None

    def _connect(self, factory: protocol.Factory) -> defer.Deferred:
        options = self.shard.address.options
        if self._master_query is not None:
            self.shard.sentinels.listen()
            try:
                announced = self.shard.sentinels.announced_master()
            except redis.ConnectionError:  # a failover under way
                return defer.fail()
            if announced is not None:
                return self._connect_master(announced, factory)
            return self._master_query.master().addCallback(self._connect_master, factory)
        if "path" in options:
            endpoint = UNIXClientEndpoint(self.reactor, options["path"],
                                          timeout=self._connect_timeout)
        else:
            endpoint = HostnameEndpoint(self.reactor, options["host"], options["port"],
                                        timeout=self._connect_timeout)
        return endpoint.connect(factory)

    def _connect_master(self, address: tuple[str, int],
                        factory: protocol.Factory) -> defer.Deferred:
        self._master = address
        return HostnameEndpoint(self.reactor, *address,
                                timeout=self._connect_timeout).connect(factory)

    def _heard(self, address: tuple[str, int] | None) -> None:
        """A new master announced, or (None) a failover begun, in a
        listener's thread."""
        self.reactor.callFromThread(self._switched, address)

    def _switched(self, address: tuple[str, int] | None) -> None:
        if self._protocol is not None and not self._protocol.lost and self._master != address:
            self._protocol.close_when_idle()

    def _connected(self) -> defer.Deferred:
        if self._protocol is not None and not (self._protocol.lost or self._protocol.closing):
            return defer.succeed(self._protocol)
        waiter = defer.Deferred()
        if self._connecting is None:
            self._connecting = [waiter]
            self._connect(protocol.Factory.forProtocol(RespProtocol)).addBoth(self._opened)
        else:
            self._connecting.append(waiter)
        return waiter

    def _opened(self, result: RespProtocol | Failure) -> None:
        waiters, self._connecting = self._connecting, None
        if isinstance(result, RespProtocol):
            options = self.shard.address.options
            setup = []
            if options.get("password"):
                setup.append(("AUTH", options.get("username") or "default",
                              options["password"]))
            if options.get("db"):
                setup.append(("SELECT", options["db"]))
            # Every script, so that no command meets NOSCRIPT: loading one
            # then would run it after commands sent later (a resume before
            # its pause).
            setup += [("SCRIPT", "LOAD", source) for _, source in scripts.LOADED.values()]
            for command in setup:
                # Pipelined ahead of every command; a refusal fails those.
                result.execute(hiredis.pack_command(command)).addErrback(
                    lambda failure: result.transport.abortConnection())
            if self._master_query is not None:
                # A master that a stale sentinel named, and that a failover
                # has since demoted, fails the commands behind this.
                result.execute(hiredis.pack_command(("ROLE",))).addCallbacks(
                    self._role, lambda failure: result.transport.abortConnection(),
                    callbackArgs=(result, self._master))
            self.client_id = None
            result.execute(hiredis.pack_command(("CLIENT", "ID"))).addCallbacks(
                self._identified, lambda failure: None)
            self._protocol = result
        for waiter in waiters:
            if isinstance(result, RespProtocol):
                waiter.callback(result)
            else:
                waiter.errback(result)

    def _identified(self, client_id: int) -> None:
        self.client_id = client_id

    def execute(self, *args: Any, timeout: float = COMMAND_TIMEOUT) -> defer.Deferred:
        """Run one command; fails with ChannelBackendUnavailable if the
        shard cannot be reached (at once while it is known to be down)."""
        shard = self.shard
        claim = shard.claim()
        if claim is None:
            return defer.fail(shard.unavailable())
        packed = hiredis.pack_command(args)
        answer = self._connected()
        if claim == PROBE:  # a PING first, answered within READ_TIMEOUT
            answer.addCallback(lambda connection: self._send(
                connection, PING[0], READ_TIMEOUT)).addCallback(lambda _: self._connected())
        answer.addCallback(lambda connection: self._send(connection, packed, timeout)
                           .addErrback(_written))
        return answer.addCallbacks(self._answered, self._failed,
                                   callbackArgs=(time.monotonic(),))

    def _send(self, connection: RespProtocol, packed: bytes, timeout: float) -> defer.Deferred:
        answer = connection.execute(packed)
        _Deadline(self.clock, connection, answer, timeout, self.shard.address.label)
        return answer

    def _answered(self, reply: Any, since: float) -> Any:
        if self.shard.down:
            self.shard.recovered(since)
        return reply

    def _role(self, role: list, connection: RespProtocol, master: tuple[str, int]) -> None:
        if role[0] == b"master":
            self.shard.sentinels.reached(master)
            return
        # Down for that reason (the commands behind fail for the abort).
        self.shard.failed(redis.ConnectionError(
            "{}:{}, which a sentinel names as master, is a {}".format(*master, role[0].decode())))
        connection.transport.abortConnection()

    def _failed(self, failure: Failure) -> Failure:
        error = failure.value
        if isinstance(error, redis.ResponseError):
            if self._master_query is not None and str(error).startswith(DEMOTED):
                # The master moved: the next connection asks where to.
                if self._protocol is not None:
                    self._protocol.transport.abortConnection()
            elif str(error).startswith(REFUSED):
                raise self.shard.refused(error) from error
            else:
                return failure  # a bug, not an outage
        if self.closed:
            raise ChannelBackendUnavailable(
                f"The connection to Redis shard {self.shard.address.label} was closed") from error
        self.shard.failed(error)
        raise self.shard.unavailable(error, getattr(error, "written", False)) from error

    def script(self, name: str, keys: list, args: list,
               timeout: float = COMMAND_TIMEOUT) -> defer.Deferred:
        """Run a script of scripts.py. Each connection loads them all when
        it opens; one is loaded again if the server lost it anyway (SCRIPT
        FLUSH)."""
        sha, source = scripts.LOADED[name]
        command = ("EVALSHA", sha, len(keys), *keys, *args)

        def load(failure):
            failure.trap(redis.ResponseError)
            if not str(failure.value).startswith("NOSCRIPT"):
                return failure
            loaded = self.execute("SCRIPT", "LOAD", source)
            return loaded.addCallback(lambda _: self.execute(*command, timeout=timeout))

        return self.execute(*command, timeout=timeout).addErrback(load)

    def close(self) -> None:
        self.closed = True
        if self._protocol is not None and not self._protocol.lost:
            self._protocol.close_when_idle()


def _written(failure: Failure) -> Failure:
    """The command had been sent when it failed: the server may run it."""
    failure.value.written = True
    return failure


class _Deadline:
    """The wait for one command's answer: past ``timeout``, the connection
    is cut and every command on it fails (TimeoutError). Checked after one
    more pass over the reactor's I/O, so that an answer that came while the
    reactor was busy elsewhere is not taken for silence; and given again
    once if it fired late (STALL)."""

    def __init__(self, clock: Any, connection: RespProtocol, answer: defer.Deferred,
                 timeout: float, label: str):
        self.clock = clock
        self.connection = connection
        self.answer = answer
        self.timeout = timeout
        self.label = label
        self.extended = False
        self.call = clock.callLater(timeout, self.overdue)
        answer.addBoth(self.settled)

    def settled(self, result: Any) -> Any:
        if self.call.active():
            self.call.cancel()
        return result

    def overdue(self) -> None:
        late = self.clock.seconds() - self.call.getTime()
        if late > STALL and not self.extended:
            self.extended = True
            self.call = self.clock.callLater(self.timeout, self.overdue)
        else:
            self.call = self.clock.callLater(0, self.silent)

    def silent(self) -> None:
        if not self.answer.called and not self.connection.lost:
            self.connection.abort_silent(f"Redis shard {self.label} gave no answer within "
                                         f"{self.timeout:g} s")
