"""One Redis server of the backend: its connections, its scripts, and
whether it is reachable.

An unreachable shard fails fast: after a failure, calls raise
``ChannelBackendUnavailable`` at once until a backoff delay (doubling up to
``MAX_BACKOFF``) has passed, then one call tries again. The outage is logged
once when it starts and once when it ends, with the number of messages it
cost (``lost``), not once per message.
"""

from __future__ import annotations

import inspect
import logging
import threading
import time
from typing import Any

import hiredis
import redis

from channels.backends.redis import scripts
from channels.backends.redis.hosts import ShardAddress
from channels.backends.redis.sentinel import MasterConnection, Sentinels
from channels.exceptions import ChannelBackendUnavailable

logger = logging.getLogger("channels.backends.redis")

# A connection attempt to a host that does not answer gives up after this.
CONNECT_TIMEOUT = 0.5
# A command (not a blocking pop) whose answer takes longer fails the shard.
COMMAND_TIMEOUT = 5.0
# A blocking pop whose wait has run out is answered within this, or its
# shard is taken as silent (a stopped server, a host gone without a word):
# both clients bound their wait so, rather than leave it to TCP.
POP_MARGIN = 0.5
# A call that may be given up early unanswered this long means its shard is
# silent: a read, or a send to a channel's home shard (never tried on
# another, so giving up cannot deliver it twice; a normal channel's send,
# which is, waits COMMAND_TIMEOUT). With a blocking pop's POP_MARGIN it
# bounds how long a stopped shard goes unnoticed (docs/scaling.rst).
READ_TIMEOUT = 1.0
# What claim() says of a shard: up, or down and due to be tried again.
UP, PROBE = "up", "probe"
PING = [hiredis.pack_command(("PING",))]
# A heartbeat call, made on every shard every interval, waits this long for
# each: a silent shard must not hold up the others' records past their TTL.
HEARTBEAT_TIMEOUT = 1.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
# Connections kept open for reuse; a burst may open more, and closes them.
MAX_IDLE_CONNECTIONS = 64

# Errors that mean "this server cannot be reached now", as opposed to a bug.
# Answers of a server that is up but cannot take a command now.
REFUSALS = (redis.exceptions.OutOfMemoryError, redis.exceptions.ReadOnlyError)
# The same by the reply's first word (redis-py has no class for a master
# short of replicas, under min-replicas-to-write).
REFUSED = ("OOM", "READONLY", "NOREPLICAS")
# (InvalidResponse: something that is not Redis answers on that port.)
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError,
                     redis.exceptions.InvalidResponse)


# No CLIENT SETINFO when connecting: its answer would be awaited for the
# whole COMMAND_TIMEOUT from a server that stopped answering (which still
# accepts connections, in its kernel), before any call's own deadline.
_NO_SETINFO = ({"driver_info": None}
               if "driver_info" in inspect.signature(redis.Connection.__init__).parameters
               else {"lib_name": None, "lib_version": None})


def connection_options(address: ShardAddress, **overrides: Any) -> dict[str, Any]:
    """redis-py ``Connection`` arguments for ``address``."""
    options = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        # RESP2: the replies used here are plain arrays and strings, and
        # redis-py parses RESP2 faster.
        "protocol": 2,
        **_NO_SETINFO,
    }
    if "path" not in address.options:  # TCP, where a peer can vanish silently
        options["socket_keepalive"] = True
    options.update(address.options)
    options.update(overrides)
    return options


class Shard:
    """Connections to one server, and whether it is reachable.

    Commands go over plain redis-py connections kept in a list of idle ones
    rather than through ``redis.Redis``: the client's per-command machinery
    costs more than Redis itself takes to run a send, and a pool here need
    not cap concurrent connections (redis-py's default pool raises beyond
    100, which a burst of threads sharing one backend would hit).
    """

    def __init__(self, index: int, address: ShardAddress, alias: str):
        self.index = index
        self.address = address
        self.alias = alias
        options = connection_options(address)
        self._connection_class = options.pop("connection_class", redis.Connection)
        # Of a Sentinel-managed shard: its sentinels (sentinel.py).
        self.sentinels: Sentinels | None = None
        if address.sentinel is not None:
            self.sentinels = Sentinels(address.sentinel, options["socket_connect_timeout"],
                                       self.new_master, self.master_switched)
            self._connection_class = MasterConnection
            options["connection_pool"] = self.sentinels
        self._options = options
        self._idle: list[redis.Connection] = []
        self._state_lock = threading.Lock()
        self.down = False
        # Commands sent that failed (unreachable, timed out, refused): the
        # channels_redis_command_failures_total metric. Calls refused at
        # once while the shard is known to be down never reach it.
        self.failures = 0
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self._down_since = 0.0
        self._lost = 0

    def __repr__(self) -> str:
        return f"<Shard {self.index} {self.address.label}>"

    def new_connection(self, **overrides: Any) -> redis.Connection:
        return self._connection_class(**{**self._options, **overrides})

    @property
    def available(self) -> bool:
        """Up, or down long enough that it is time to try again."""
        return not self.down or time.monotonic() >= self._retry_at

    def claim(self) -> str | None:
        """Whether a call may go to the shard now: ``UP``; ``PROBE`` if it
        is down with its backoff over: this call tries again, after a PING
        answered within READ_TIMEOUT, and the others fail fast meanwhile
        (a stopped server accepts connections and answers nothing: it must
        not hold every call of the process for a command timeout each);
        None while it is down."""
        if not self.down:
            return UP
        with self._state_lock:
            now = time.monotonic()
            if not self.down:
                return UP
            if now < self._retry_at:
                return None
            self._retry_at = now + COMMAND_TIMEOUT  # failed() or recovered() ends it
            return PROBE

    def unavailable(self, error: BaseException | None = None,
                    maybe_taken: bool = False) -> ChannelBackendUnavailable:
        reason = f": {error}" if error is not None else " (retrying soon)"
        exc = ChannelBackendUnavailable(
            f"Redis shard {self.address.label} of channel backend {self.alias!r} "
            f"is unreachable{reason}"
        )
        exc.maybe_taken = maybe_taken
        return exc

    def refused(self, error: BaseException) -> ChannelBackendUnavailable:
        with self._state_lock:
            self.failures += 1
        return ChannelBackendUnavailable(
            f"Redis shard {self.address.label} of channel backend {self.alias!r} "
            f"refused the command: {error}")

    @staticmethod
    def pack(*args: str | bytes | int | float) -> list[bytes]:
        """``args`` as a command in the wire format, for ``execute_packed``.

        hiredis's packer, called directly: redis-py's wrapper around it
        costs five times as much, a tenth of a worker's time per reply."""
        return [hiredis.pack_command(args)]

    def execute(self, *args: str | bytes | int | float) -> Any:
        """Run one command; ChannelBackendUnavailable if the shard cannot be
        reached (at once while it is known to be down)."""
        return self.execute_packed(self.pack(*args))

    def execute_packed(self, packed: list[bytes], timeout: float | None = None) -> Any:
        """``timeout``: how long to wait for the answer, if not the
        connection's COMMAND_TIMEOUT."""
        reply = self.exchange(packed, 1, timeout)[0]
        if isinstance(reply, redis.ResponseError):
            if isinstance(reply, REFUSALS) or str(reply).startswith(REFUSED):
                # The server is up but cannot take this now (out of memory,
                # a read-only replica): the call did not happen.
                raise self.refused(reply) from reply
            raise reply
        return reply

    def execute_many(self, *commands: tuple) -> list[Any]:
        """Run ``commands`` in one round trip (a pipeline, not a
        transaction): their replies, an error reply as its ResponseError."""
        return self.exchange([hiredis.pack_command(command) for command in commands],
                             len(commands))

    def exchange(self, packed: list[bytes], count: int,
                 timeout: float | None = None) -> list[Any]:
        """Send ``packed`` and read ``count`` replies (an error reply as its
        ResponseError), each within ``timeout`` if given;
        ChannelBackendUnavailable if the shard cannot be reached (at once
        while it is known to be down)."""
        claim = self.claim()
        if claim is None:
            raise self.unavailable()
        started = time.monotonic()
        try:
            connection = self._idle.pop()  # list.pop is atomic: no lock
        except IndexError:
            connection = self.new_connection()
        for attempt in range(2):
            reused = getattr(connection, "_sock", None) is not None
            written = False
            try:
                if claim == PROBE:
                    connection.send_packed_command(PING, check_health=False)
                    connection.read_response(timeout=READ_TIMEOUT)
                connection.send_packed_command(packed, check_health=False)
                written = True
                replies = []
                for _ in range(count):
                    try:
                        replies.append(connection.read_response() if timeout is None
                                       else connection.read_response(timeout=timeout))
                    except redis.ResponseError as exc:  # read whole: still usable
                        replies.append(exc)
                break
            except CONNECTION_ERRORS as exc:
                connection.disconnect()
                # A connection that went stale (a restarted server) is
                # retried once; a fresh one failing, or no answer in time,
                # means the shard is down.
                if not reused or attempt or isinstance(exc, redis.TimeoutError):
                    self.failed(exc)
                    raise self.unavailable(exc, written) from exc
            except BaseException:
                connection.disconnect()
                raise
        self._release(connection)
        if self.down:
            self.recovered(started)
        return replies

    def _release(self, connection: redis.Connection) -> None:
        if len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            connection.disconnect()

    def script(self, name: str, keys: list, args: list, timeout: float | None = None) -> Any:
        sha, source = scripts.LOADED[name]
        command = self.pack("EVALSHA", sha, len(keys), *keys, *args)
        try:
            return self.execute_packed(command, timeout)
        except redis.exceptions.NoScriptError:
            # A new or restarted server: load it once, then run it.
            self.execute_packed(self.pack("SCRIPT", "LOAD", source), timeout)
            return self.execute_packed(command, timeout)

    def failed(self, error: BaseException) -> None:
        with self._state_lock:
            self.failures += 1
            if self.down:
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            else:
                self.down = True
                self._backoff = FIRST_BACKOFF
                self._down_since = time.monotonic()
                self._lost = 0
                logger.error("Redis shard %s of channel backend %r is unreachable (%s); "
                             "retrying with backoff", self.address.label, self.alias, error)
            self._retry_at = time.monotonic() + self._backoff

    def recovered(self, since: float | None = None) -> None:
        """An answer came, to a call made at ``since`` (monotonic time), if
        known: one made before the outage began tells nothing of its end."""
        with self._state_lock:
            if self.down and (since is None or since >= self._down_since):
                self.down = False
                self._backoff = FIRST_BACKOFF
                logger.warning("Redis shard %s of channel backend %r is reachable again "
                               "after %.1f s; %d message(s) could not be sent to it meanwhile",
                               self.address.label, self.alias,
                               time.monotonic() - self._down_since, self._lost)

    def lost(self, messages: int = 1) -> None:
        """``messages`` could not be sent for this shard's outage: counted
        for the line that logs its end, rather than logged each."""
        with self._state_lock:
            self._lost += messages

    def new_master(self, address: tuple[str, int], previous: tuple[str, int]) -> None:
        """A Sentinel-managed shard has a new master (a failover): logged
        once, and the idle connections to the old one are dropped (one
        still up but cut off from the sentinels would keep taking writes
        that its replicas never see)."""
        logger.warning("Redis shard %s of channel backend %r: the sentinels name a new "
                       "master, %s:%d (was %s:%d)", self.address.label, self.alias,
                       *address, *previous)
        self.close_idle()

    def master_switched(self, address: tuple[str, int] | None) -> None:
        """The sentinels announced a new master, or (None) began to replace
        the master: the next call tries at once, to reach the new one, or to
        find the shard down."""
        with self._state_lock:
            self._retry_at = 0.0

    def close_idle(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.disconnect()

    def close(self) -> None:
        self.close_idle()
        if self.sentinels is not None:
            self.sentinels.close()
