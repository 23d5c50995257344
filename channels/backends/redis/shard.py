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
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from channels.backends.redis import scripts
from channels.backends.redis.hosts import ShardAddress
from channels.exceptions import ChannelBackendUnavailable

logger = logging.getLogger("channels.backends.redis")

# A connection attempt to a host that does not answer gives up after this.
CONNECT_TIMEOUT = 0.5
# A command (not a blocking pop) whose answer takes longer fails the shard.
COMMAND_TIMEOUT = 5.0
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 2.0
# redis-py caps a pool at 100 connections by default and raises beyond; a
# burst of threads sharing one backend must not trip over that.
MAX_CONNECTIONS = 10_000

# Errors that mean "this server cannot be reached now", as opposed to a bug.
CONNECTION_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)

T = TypeVar("T")


def connection_options(address: ShardAddress, **overrides: Any) -> dict[str, Any]:
    options = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": COMMAND_TIMEOUT,
        "socket_keepalive": True,
        # A pooled connection that went stale in a restart is retried once,
        # on a new connection; an unreachable server is not retried.
        "retry": Retry(NoBackoff(), 1),
        "retry_on_error": [redis.ConnectionError],
        # RESP2: the replies used here are plain arrays and strings, and
        # redis-py parses RESP2 faster.
        "protocol": 2,
    }
    options.update(address.options)
    options.update(overrides)
    return options


class Shard:
    def __init__(self, index: int, address: ShardAddress, alias: str):
        self.index = index
        self.address = address
        self.alias = alias
        self.pool = redis.ConnectionPool(max_connections=MAX_CONNECTIONS,
                                         **connection_options(address))
        self.client = redis.Redis(connection_pool=self.pool, retry=Retry(NoBackoff(), 0))
        self.scripts = {
            name: self.client.register_script(getattr(scripts, name))
            for name in ("SEND", "SEND_MANY", "REQUEUE", "RECEIVE", "SETTLE", "PUSH_BACK",
                         "GROUP_ADD", "GROUP_MEMBERS", "GROUP_SEND", "UNLOCK")
        }
        self._state_lock = threading.Lock()
        self.down = False
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF

    def __repr__(self) -> str:
        return f"<Shard {self.index} {self.address.label}>"

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

    def run(self, operation: Callable[..., T], *args: Any) -> T:
        """``operation(*args)``, or ChannelBackendUnavailable if the shard
        cannot be reached (at once while it is known to be down)."""
        if not self.available:
            raise self.unavailable()
        try:
            result = operation(*args)
        except CONNECTION_ERRORS as exc:
            self.failed(exc)
            raise self.unavailable(exc) from exc
        if self.down:
            self.recovered()
        return result

    def script(self, name: str, keys: list, args: list) -> Any:
        return self.run(self.scripts[name], keys, args)

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

    def close(self) -> None:
        self.pool.disconnect()
