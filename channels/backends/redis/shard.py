"""One Redis server of the backend: its connections, its scripts, and
whether it is reachable.

An unreachable shard fails fast: after a failure, calls raise
``ChannelBackendUnavailable`` at once until a backoff delay (doubling up to
``MAX_BACKOFF``) has passed, then one call tries again. The outage is logged
once when it starts and once when it ends, not once per message.
"""

from __future__ import annotations

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


def connection_options(address: ShardAddress, **overrides: Any) -> dict[str, Any]:
    """redis-py ``Connection`` arguments for ``address``."""
    options = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        # RESP2: the replies used here are plain arrays and strings, and
        # redis-py parses RESP2 faster.
        "protocol": 2,
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
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF

    def __repr__(self) -> str:
        return f"<Shard {self.index} {self.address.label}>"

    def new_connection(self, **overrides: Any) -> redis.Connection:
        return self._connection_class(**{**self._options, **overrides})

    @property
    def available(self) -> bool:
        """Up, or down long enough that it is time to try again."""
        return not self.down or time.monotonic() >= self._retry_at

    def unavailable(self, error: BaseException | None = None) -> ChannelBackendUnavailable:
        reason = f": {error}" if error is not None else " (retrying soon)"
        return ChannelBackendUnavailable(
            f"Redis shard {self.address.label} of channel backend {self.alias!r} "
            f"is unreachable{reason}"
        )

    def refused(self, error: BaseException) -> ChannelBackendUnavailable:
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

    def execute_packed(self, packed: list[bytes]) -> Any:
        reply = self.exchange(packed, 1)[0]
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

    def exchange(self, packed: list[bytes], count: int) -> list[Any]:
        """Send ``packed`` and read ``count`` replies (an error reply as its
        ResponseError); ChannelBackendUnavailable if the shard cannot be
        reached (at once while it is known to be down)."""
        if not self.available:
            raise self.unavailable()
        try:
            connection = self._idle.pop()  # list.pop is atomic: no lock
        except IndexError:
            connection = self.new_connection()
        for attempt in range(2):
            reused = getattr(connection, "_sock", None) is not None
            try:
                connection.send_packed_command(packed, check_health=False)
                replies = []
                for _ in range(count):
                    try:
                        replies.append(connection.read_response())
                    except redis.ResponseError as exc:  # read whole: still usable
                        replies.append(exc)
                break
            except CONNECTION_ERRORS as exc:
                connection.disconnect()
                # A connection that went stale (a restarted server) is
                # retried once; a fresh one failing means the shard is down.
                if not reused or attempt:
                    self.failed(exc)
                    raise self.unavailable(exc) from exc
            except BaseException:
                connection.disconnect()
                raise
        self._release(connection)
        if self.down:
            self.recovered()
        return replies

    def _release(self, connection: redis.Connection) -> None:
        if len(self._idle) < MAX_IDLE_CONNECTIONS:
            self._idle.append(connection)
        else:
            connection.disconnect()

    def script(self, name: str, keys: list, args: list) -> Any:
        sha, source = scripts.LOADED[name]
        try:
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            # A new or restarted server: load it once, then run it.
            self.execute("SCRIPT", "LOAD", source)
            return self.execute("EVALSHA", sha, len(keys), *keys, *args)

    def failed(self, error: BaseException) -> None:
        with self._state_lock:
            if self.down:
                self._backoff = min(self._backoff * 2, MAX_BACKOFF)
            else:
                self.down = True
                self._backoff = FIRST_BACKOFF
                logger.error("Redis shard %s of channel backend %r is unreachable (%s); "
                             "retrying with backoff", self.address.label, self.alias, error)
            self._retry_at = time.monotonic() + self._backoff

    def recovered(self) -> None:
        with self._state_lock:
            if self.down:
                self.down = False
                self._backoff = FIRST_BACKOFF
                logger.warning("Redis shard %s of channel backend %r is reachable again",
                               self.address.label, self.alias)

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
