"""The Redis backend's layer client (``channels.backends.layer_client``):
its calls for the interface server, made on a Twisted reactor over
non-blocking connections, by the same rules as the blocking client
(``layout.py``, ``sending.py``, ``receiving.py``). Why it exists:
docs/benchmarks.rst.

What runs here: sending a batch (with a normal channel's retries on the
other shards), reading the process's response channels, pausing or
resuming one (a slow HTTP reader's channel must stop at once), and the
interface server's heartbeats.
"""

from __future__ import annotations

import logging
import secrets
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.python.failure import Failure

from channels.backends.layer_client import Deliver, LayerClient, Lost, Reading, SendFailures
from channels.backends.membership import bound_by_process
from channels.backends.redis.layout import answered, merge_heartbeats, now_ms, unpack
from channels.backends.redis.reactor_connection import ShardConnection
from channels.backends.redis.shard import HEARTBEAT_TIMEOUT, POP_MARGIN, READ_TIMEOUT
from channels.exceptions import ChannelBackendUnavailable

if TYPE_CHECKING:
    from channels.backends.redis.backend import RedisChannelBackend
    from channels.backends.redis.receiving import ReceivePlan
    from channels.backends.redis.sending import SendPlan

logger = logging.getLogger("channels.backends.redis")

# After a failed receive, the next try waits this long.
RECEIVE_RETRY = 0.5


class RedisReactorClient(LayerClient):
    """The layer client of a Redis backend (see the module's docstring).

    Timers (the pace between reads, retries) run on ``clock``, the reactor
    unless a test sets a ``twisted.internet.task.Clock``."""

    coalesce_wait = 0.0005  # a read on the reactor costs no thread switch

    def __init__(self, backend: RedisChannelBackend, reactor: Any):
        super().__init__(backend, reactor)
        self.clock = reactor
        self.stopped = False
        self._readers: list[_Reader] = []
        # Per shard: one connection for commands, one for the blocking pop.
        self._commands: dict[int, ShardConnection] = {}
        self._blocking: dict[int, ShardConnection] = {}

    def _connection(self, index: int, blocking: bool = False) -> ShardConnection:
        connections = self._blocking if blocking else self._commands
        connection = connections.get(index)
        if connection is None:
            connection = connections[index] = ShardConnection(self.reactor,
                                                          self.backend.shards[index], self.clock)
        return connection

    # Sending.

    def send_batch(self, messages: list[tuple[str, bytes]]) -> defer.Deferred:
        """One SEND_MANY per shard, and a normal channel's retries on the
        other shards one after the other (sending.py)."""
        plan = self.backend.send_plan(messages)
        calls = [self._send_on(plan, index, positions) for index, positions in plan.calls]
        return defer.gatherResults(calls, consumeErrors=True).addCallback(self._retry, plan)

    def _send_on(self, plan: SendPlan, index: int, positions: list[int]) -> defer.Deferred:
        def answered(full: list[int]) -> None:
            plan.answered(index, positions, full)

        def failed(failure: Failure) -> None:
            plan.failed(index, positions, failure.value)

        return self._connection(index).script("SEND_MANY", [], plan.command(positions)
                                             ).addCallbacks(answered, failed)

    def _retry(self, _: Any, plan: SendPlan) -> SendFailures | defer.Deferred:
        call = plan.retry()
        if call is None:
            return sorted(plan.failures, key=lambda failure: failure[0])
        return self._send_on(plan, *call).addCallback(self._retry, plan)

    def set_paused(self, channel: str, paused: bool) -> defer.Deferred:
        """Changes to one channel run in the order asked: one connection
        per shard carries them."""
        try:
            index, keys, args = self.backend.layout.pause_call(channel, paused)
        except ValueError:
            return defer.fail()
        return self._connection(index).script("PAUSE", keys, args).addCallback(lambda _: None)

    def discard_from_groups(self, channels: list[str]) -> defer.Deferred:
        """On every shard, as the blocking client does."""
        backend = self.backend
        calls = [self._on_every_shard("GROUP_LEAVE", [], backend.layout.group_leave_args(
            process, names, secrets.token_hex(8)))
            for process, names in bound_by_process(channels).items()]
        return defer.gatherResults(calls, consumeErrors=True).addCallback(lambda _: None)

    # Heartbeats: on every shard, as the blocking client does.

    def set_heartbeat(self, kind: str, id: str, data: bytes, ttl: float) -> defer.Deferred:
        keys, args = self.backend.layout.heartbeat_write(kind, id, data, ttl)
        return self._on_every_shard("HEARTBEAT_SET", keys, args).addCallback(lambda _: None)

    def heartbeats(self, kind: str) -> defer.Deferred:
        backend = self.backend
        return self._on_every_shard("HEARTBEATS", *backend.layout.heartbeat_read(kind)
                                    ).addCallback(lambda replies: backend.heartbeats_from(
                                        *merge_heartbeats(replies)))

    def clear_heartbeat(self, kind: str, id: str) -> defer.Deferred:
        keys, args = self.backend.layout.heartbeat_clear(kind, id)
        return self._on_every_shard("HEARTBEAT_CLEAR", keys, args).addCallback(lambda _: None)

    def _on_every_shard(self, name: str, keys: list, args: list) -> defer.Deferred:
        """Fires with the replies of the shards that answered; fails if none
        did (a silent one within HEARTBEAT_TIMEOUT)."""
        calls = [self._connection(index).script(name, keys, args, timeout=HEARTBEAT_TIMEOUT)
                 for index in range(len(self.backend.shards))]

        def outcomes(results: list) -> list:
            return answered([value if ok else value.value for ok, value in results])

        return defer.DeferredList(calls, consumeErrors=True).addCallback(outcomes)

    # Receiving.

    def receive(self, channels: list[str], limit: int, deliver: Deliver,
                lost: Lost | None = None) -> Reading:
        plan = self.backend.receive_plan(channels)
        self._readers = [reader for reader in self._readers if not reader.ended.called]
        readers = []
        for index in plan.shard_indexes:
            reader = _Reader(self, plan, index, limit, deliver, lost)
            self._readers.append(reader)
            readers.append(reader)
            reader.take()

        def cancel() -> None:
            for reader in readers:
                reader.cancel()

        return Reading(cancel)

    def stop(self) -> defer.Deferred:
        """What a read under way takes: a blocking pop puts it back at the
        head of its inbox, a RECEIVE (which has settled it) delivers it,
        before this fires. A blocking pop waiting for messages is ended at
        once (``_unblock``), so this fires without waiting out
        ``poll_timeout``. The connections close then, each command
        connection once it has its last answer."""
        self.stopped = True
        for reader in self._readers:
            reader.stop()
        ended = defer.gatherResults([reader.ended for reader in self._readers])
        return ended.addCallback(self._close)

    def _unblock(self, index: int) -> None:
        """End the blocking pop of shard ``index`` as if its wait had run
        out (CLIENT UNBLOCK's default): what it took before, if anything,
        still arrives and goes back. Closing its connection instead could
        lose a message popped just then. If the server refuses (an ACL),
        the pop ends by itself within ``poll_timeout``."""
        blocking = self._blocking.get(index)
        if blocking is not None and blocking.client_id is not None:
            self._connection(index).execute("CLIENT", "UNBLOCK", blocking.client_id
                                            ).addErrback(lambda failure: None)

    def _close(self, _: Any) -> None:
        for connection in [*self._commands.values(), *self._blocking.values()]:
            connection.close()


class _Reader:
    """The read loop of one shard: take what waits (settling a popped
    entry of an inbox in the same call), and when nothing does, block on
    the shard's keys until something comes."""

    def __init__(self, client: RedisReactorClient, plan: ReceivePlan, index: int, limit: int,
                 deliver: Deliver, lost: Lost | None = None):
        self.client = client
        self.receiving = client.backend.receiving
        self.layout = client.backend.layout
        self.plan = plan
        self.index = index
        self.limit = limit
        self.deliver = deliver
        self.lost = lost
        self.cancelled = False
        # Fires once the loop has ended, after stop().
        self.ended = defer.Deferred()
        self._call: Any = None  # the timer of the next read, if one waits
        self._blocked = False  # a blocking pop is under way

    @property
    def stopped(self) -> bool:
        return self.cancelled or self.client.stopped

    def cancel(self) -> None:
        self.cancelled = True
        self.stop()

    def stop(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
            self._end()
        elif self._blocked:
            self.client._unblock(self.index)

    def take(self, settle: tuple[str, bytes] | None = None, popped: list[bytes] = ()) -> None:
        self._call = None
        if self.stopped:
            self._end()
            return
        waiting = self.receiving.waiting(self.plan, self.limit)
        if waiting:  # members' messages of group messages taken earlier
            self._hand_over(waiting)
            return
        now = now_ms()
        args = self.plan.receive_args(self.index, now, self.limit - len(popped), settle)
        self.client._connection(self.index).script(
            "RECEIVE", [], args, timeout=READ_TIMEOUT).addCallbacks(
            self._taken, self._failed, callbackArgs=(now, popped), errbackArgs=(popped,)
        ).addErrback(self._crashed)

    def _taken(self, reply: list[bytes], now: int, popped: list[bytes]) -> None:
        entries = [*popped, *unpack(reply)]
        if not entries:
            self._block()
            return
        taken = self.receiving.deliver(entries, now, self.limit)
        if taken:
            self._hand_over(taken)
        else:  # all had expired
            self.take()

    def _hand_over(self, batch: list[tuple[str, bytes]]) -> None:
        self.deliver(batch)
        self._later(self.client.pace(len(batch)))

    def _later(self, delay: float) -> None:
        if self.stopped:
            self._end()
        else:
            self._call = self.client.clock.callLater(delay, self.take)

    def _block(self) -> None:
        if self.stopped:
            self._end()
            return
        keys = self.plan.blocking_keys(self.index)
        timeout = self.client.poll_timeout
        connection = self.client._connection(self.index, blocking=True)
        self._blocked = True
        connection.execute("BLMPOP", f"{timeout:.3f}", len(keys), *keys, "LEFT", "COUNT", 1,
                           timeout=timeout + POP_MARGIN
                           ).addBoth(self._unblocked
                           ).addCallbacks(self._popped, self._failed).addErrback(self._crashed)

    def _unblocked(self, result: Any) -> Any:
        self._blocked = False
        return result

    def _popped(self, got: list | None) -> None:
        if got is None:
            self.take()
            return
        key, entries = got
        if self.stopped:
            # The next reader of this process reads these.
            self.client._connection(self.index).script(
                "PUSH_BACK", [key], self.layout.push_back_args(entries)
            ).addBoth(lambda _: self._end())
            return
        self.take(self.plan.settlement(key, entries), entries)

    def _failed(self, failure: Failure, popped: list[bytes] = ()) -> None:
        if popped:
            # Taken from the inbox: deliver it; its channel's count stays
            # one too high until the inbox's keys expire.
            taken = self.receiving.deliver(list(popped), now_ms(), self.limit)
            if taken:
                self.deliver(taken)
        if failure.check(ChannelBackendUnavailable):
            # The shard logs when an outage starts and ends.
            logger.debug("Receive on shard %d failed: %s; retrying", self.index,
                         failure.value)
            if self.lost is not None and not self.stopped:
                self.lost(failure.value)
            self._later(RECEIVE_RETRY)
        else:
            self._crashed(failure)

    def _crashed(self, failure: Failure) -> None:
        """A bug, here or in what a delivery called: log it, and go on
        reading, so that no client waits forever for its replies."""
        logger.error("Reading shard %d failed; retrying", self.index,
                     exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        self._later(RECEIVE_RETRY)

    def _end(self) -> None:
        if not self.ended.called:
            self.ended.callback(None)
