"""The Redis backend's busy calls on a Twisted reactor, for the interface
server.

Without this, the interface server's bridge (channels/interfaces/layer.py)
makes its backend calls in a sender and a receiver thread, and CPython hands
the interpreter between them and the reactor at every network call. On the
reactor, over non-blocking connections, the interface spends less CPU per
message (docs/benchmarks.rst).

What runs here: sending a batch, reading the process's response channels,
and pausing or resuming one (a slow HTTP reader's channel must stop at
once). Messages for normal channels that the first shard found full or
could not take, when other shards could, are handed back to the bridge,
whose sender thread applies the blocking backend's whole rule to them; so
are pauses that failed, for its retries.
"""

from __future__ import annotations

import logging
import random
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import hiredis
import redis
from twisted.internet import defer, protocol
from twisted.internet.endpoints import HostnameEndpoint, UNIXClientEndpoint
from twisted.python.failure import Failure

from channels.backends.redis import scripts
from channels.backends.redis.backend import _unpack
from channels.backends.redis.shard import COMMAND_TIMEOUT, CONNECT_TIMEOUT, Shard
from channels.exceptions import ChannelBackendUnavailable, ChannelFull

if TYPE_CHECKING:
    from channels.backends.redis.backend import RedisChannelBackend, _Plan

logger = logging.getLogger("channels.backends.redis")

# Answers of a server that is up but cannot take a command now (as
# shard.REFUSALS, by the reply's first word).
REFUSED = ("OOM", "READONLY")
# After a failed receive, the next try waits this long.
RECEIVE_RETRY = 0.5

# A batch's outcome: [(position, exception)] of the messages that failed, and
# the positions handed back for the bridge's sender thread to send.
SendOutcome = tuple[list[tuple[int, Exception]], list[int]]


class _Resp(protocol.Protocol):
    """One connection: commands pipelined, replies matched in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=redis.ResponseError)
        self.waiting: deque[defer.Deferred] = deque()
        self.lost = False

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

    def execute(self, packed: bytes) -> defer.Deferred:
        waiter = defer.Deferred()
        self.waiting.append(waiter)
        self.transport.write(packed)
        return waiter

    def connectionLost(self, reason: Failure) -> None:
        self.lost = True
        waiting, self.waiting = self.waiting, deque()
        for waiter in waiting:
            waiter.errback(redis.ConnectionError(f"Connection lost: {reason.value}"))


class _Connection:
    """A connection to one shard, opened at first use and again after a
    loss. Failures go into the shard's up/down state, which the blocking
    backend shares, so that both stop trying a dead server at once."""

    def __init__(self, reactor: Any, shard: Shard):
        self.reactor = reactor
        self.shard = shard
        self._protocol: _Resp | None = None
        self._connecting: list[defer.Deferred] | None = None

    def _endpoint(self):
        options = self.shard.address.options
        if "path" in options:
            return UNIXClientEndpoint(self.reactor, options["path"], timeout=CONNECT_TIMEOUT)
        return HostnameEndpoint(self.reactor, options["host"], options["port"],
                                timeout=CONNECT_TIMEOUT)

    def _connected(self) -> defer.Deferred:
        if self._protocol is not None and not self._protocol.lost:
            return defer.succeed(self._protocol)
        waiter = defer.Deferred()
        if self._connecting is None:
            self._connecting = [waiter]
            factory = protocol.Factory.forProtocol(_Resp)
            self._endpoint().connect(factory).addBoth(self._opened)
        else:
            self._connecting.append(waiter)
        return waiter

    def _opened(self, result: _Resp | Failure) -> None:
        waiters, self._connecting = self._connecting, None
        if isinstance(result, _Resp):
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
            self._protocol = result
        for waiter in waiters:
            if isinstance(result, _Resp):
                waiter.callback(result)
            else:
                waiter.errback(result)

    def execute(self, *args: Any, timeout: float = COMMAND_TIMEOUT) -> defer.Deferred:
        """Run one command; fails with ChannelBackendUnavailable if the
        shard cannot be reached (at once while it is known to be down)."""
        shard = self.shard
        if not shard.available:
            return defer.fail(shard.unavailable())
        packed = hiredis.pack_command(args)
        answer = self._connected().addCallback(lambda connection: self._send(
            connection, packed, timeout))
        return answer.addCallbacks(self._answered, self._failed)

    def _send(self, connection: _Resp, packed: bytes, timeout: float) -> defer.Deferred:
        answer = connection.execute(packed)

        def timed_out(failure, seconds):
            # The order of replies is lost with this one: start afresh.
            connection.transport.abortConnection()

        return answer.addTimeout(timeout, self.reactor, onTimeoutCancel=timed_out)

    def _answered(self, reply: Any) -> Any:
        if self.shard.down:
            self.shard.recovered()
        return reply

    def _failed(self, failure: Failure) -> Failure:
        error = failure.value
        if isinstance(error, redis.ResponseError):
            if str(error).startswith(REFUSED):
                raise ChannelBackendUnavailable(
                    f"Redis shard {self.shard.address.label} of channel backend "
                    f"{self.shard.alias!r} refused the command: {error}") from error
            return failure  # a bug, not an outage
        self.shard.failed(error)
        raise self.shard.unavailable(error) from error

    def script(self, name: str, keys: list, args: list) -> defer.Deferred:
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
            return loaded.addCallback(lambda _: self.execute(*command))

        return self.execute(*command).addErrback(load)

    def close(self) -> None:
        if self._protocol is not None and not self._protocol.lost:
            self._protocol.transport.loseConnection()


class ReactorClient:
    """Sends batches and reads response channels of one Redis backend on a
    Twisted reactor (see ``BaseChannelBackend.reactor_client``)."""

    def __init__(self, backend: RedisChannelBackend, reactor: Any):
        self.backend = backend
        self.reactor = reactor
        self.stopped = False
        self._linger = COMMAND_TIMEOUT
        # Per shard: one connection for commands, one for the blocking pop.
        self._commands: dict[int, _Connection] = {}
        self._blocking: dict[int, _Connection] = {}

    def _connection(self, index: int, blocking: bool = False) -> _Connection:
        connections = self._blocking if blocking else self._commands
        connection = connections.get(index)
        if connection is None:
            connection = connections[index] = _Connection(self.reactor,
                                                          self.backend.shards[index])
        return connection

    # Sending.

    def send_batch(self, messages: list[tuple[str, bytes]]) -> defer.Deferred:
        """Send validated, encoded messages: one script call per shard.
        Fires with a SendOutcome."""
        backend = self.backend
        now = backend._now_ms()
        batches: dict[int, list[int]] = {}
        normal, args = [], []
        for position, (channel, data) in enumerate(messages):
            index, message_args = backend._send_many_item(channel, data, now)
            args.append(message_args)
            if index is None:
                normal.append(position)
            else:
                batches.setdefault(index, []).append(position)
        failures: list[tuple[int, Exception]] = []
        if normal:
            try:
                batches.setdefault(backend._spread()[0].index, []).extend(normal)
            except ChannelBackendUnavailable as exc:
                failures += [(position, exc) for position in normal]
        # With other shards to try, a normal channel's refusal is not final.
        retry = set(normal) if len(backend.shards) > 1 else set()
        calls = [self._send_on(index, positions, args, now, retry)
                 for index, positions in batches.items()]

        def outcome(results: list[SendOutcome]) -> SendOutcome:
            handed_back: list[int] = []
            for failed, back in results:
                failures.extend(failed)
                handed_back.extend(back)
            return failures, sorted(handed_back)

        return defer.gatherResults(calls, consumeErrors=True).addCallback(outcome)

    def _send_on(self, index: int, positions: list[int], args: list[list], now: int,
                 retry: set[int]) -> defer.Deferred:
        flat = self.backend._send_many_args(positions, args, now)

        def sent(full: list[int]) -> SendOutcome:
            refused = [positions[number - 1] for number in full]
            return ([(position, ChannelFull(f"Channel {args[position][3]!r} is full"))
                     for position in refused if position not in retry],
                    [position for position in refused if position in retry])

        def failed(failure: Failure) -> SendOutcome:
            error = failure.value
            return ([(position, error) for position in positions if position not in retry],
                    [position for position in positions if position in retry])

        return self._connection(index).script("SEND_MANY", [], flat).addCallbacks(sent, failed)

    def set_paused(self, channel: str, paused: bool) -> defer.Deferred:
        """Pause or resume a response channel (``pause_channel``). Changes
        to one channel run in the order asked: one connection per shard
        carries them."""
        try:
            index, keys, args = self.backend._pause_call(channel, paused)
        except ValueError:
            return defer.fail()
        return self._connection(index).script("PAUSE", keys, args)

    # Receiving.

    def receive(self, channels: list[str], limit: int,
                deliver: Callable[[list[tuple[str, bytes]]], None],
                pace: Callable[[int], float], poll_timeout: float) -> None:
        """Read ``channels`` (process wildcards of response channels) until
        stop(): hand each batch to ``deliver``, then wait ``pace(len(batch))``
        seconds before the next read."""
        plan = self.backend._plan(channels)
        self._linger = poll_timeout + COMMAND_TIMEOUT
        for index in plan.shard_indexes:
            _Reader(self, plan, index, limit, deliver, pace, poll_timeout).take()

    def stop(self) -> None:
        """Stop reading. A blocking pop in progress puts back what it takes,
        so the connections close only once it is over."""
        self.stopped = True
        self.reactor.callLater(self._linger, self._close)

    def _close(self) -> None:
        for connection in [*self._commands.values(), *self._blocking.values()]:
            connection.close()


class _Reader:
    """The read loop of one shard: take what waits (settling a popped
    message from an inbox in the same call), and when nothing does, block
    on the shard's inboxes until something comes."""

    def __init__(self, client: ReactorClient, plan: _Plan, index: int, limit: int,
                 deliver: Callable, pace: Callable[[int], float], poll_timeout: float):
        self.client = client
        self.backend = client.backend
        self.plan = plan
        self.index = index
        self.limit = limit
        self.deliver = deliver
        self.pace = pace
        self.poll_timeout = poll_timeout
        self.args = plan.args[index]
        self.keys = [source.key for source in plan.sources[index]]

    def take(self, settle: tuple = ("", ""), popped: list[bytes] = ()) -> None:
        if self.client.stopped:
            return
        waiting = self.backend._waiting_for(self.plan, self.limit)
        if waiting:  # members' copies of group messages taken earlier
            self._hand_over(waiting)
            return
        now = self.backend._now_ms()
        args = [now, self.limit - len(popped), random.randrange(len(self.args) // 3),
                *settle, *self.args]
        self.client._connection(self.index).script("RECEIVE", [], args).addCallbacks(
            self._taken, self._failed, callbackArgs=(now, popped), errbackArgs=(popped,)
        ).addErrback(self._crashed)

    def _taken(self, reply: list[bytes], now: int, popped: list[bytes]) -> None:
        entries = [*popped, *_unpack(reply)]
        if not entries:
            self._block()
            return
        taken = self.backend._deliver(entries, now, self.limit)
        if taken:
            self._hand_over(taken)
        else:  # all had expired
            self.take()

    def _hand_over(self, batch: list[tuple[str, bytes]]) -> None:
        self.deliver(batch)
        self.client.reactor.callLater(self.pace(len(batch)), self.take)

    def _block(self) -> None:
        if self.client.stopped:
            return
        keys = self.keys[:]
        random.shuffle(keys)  # BLMPOP favours the first key
        connection = self.client._connection(self.index, blocking=True)
        connection.execute("BLMPOP", f"{self.poll_timeout:.3f}", len(keys), *keys, "LEFT",
                           "COUNT", 1, timeout=self.poll_timeout + COMMAND_TIMEOUT
                           ).addCallbacks(self._popped, self._failed).addErrback(self._crashed)

    def _popped(self, got: list | None) -> None:
        if got is None:
            self.take()
            return
        key, entries = got
        if self.client.stopped:
            # A later bridge on this backend reads these.
            self.client._connection(self.index).script(
                "PUSH_BACK", [key], [self.backend._expiry_ms, *reversed(entries)])
            return
        counts = self.plan.counts[key.decode()]
        channel = entries[0].split(b" ", 2)[1]
        self.take((counts, channel), entries)

    def _failed(self, failure: Failure, popped: list[bytes] = ()) -> None:
        if popped:
            # Taken from the inbox: deliver it; its channel's count stays
            # one too high until the inbox's keys expire.
            taken = self.backend._deliver(list(popped), self.backend._now_ms(), self.limit)
            if taken:
                self.deliver(taken)
        if failure.check(ChannelBackendUnavailable):
            # The shard logs when an outage starts and ends.
            logger.debug("Receive on shard %d failed: %s; retrying", self.index,
                         failure.value)
            self.client.reactor.callLater(RECEIVE_RETRY, self.take)
        else:
            self._crashed(failure)

    def _crashed(self, failure: Failure) -> None:
        """A bug, here or in what a delivery called: log it, and go on
        reading, so that no client waits forever for its replies."""
        logger.error("Reading shard %d failed; retrying", self.index,
                     exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        self.client.reactor.callLater(RECEIVE_RETRY, self.take)
