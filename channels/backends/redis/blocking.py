"""Waiting for messages on several shards at once.

Redis can only block a connection on keys of its own server. To wait on S
shards, one dedicated connection per shard blocks (BLMPOP) in its own
thread, and the first messages to arrive go to the caller at once. A
background thread then releases the other pops with ``CLIENT UNBLOCK`` from
an ordinary connection and pushes what one of them took in the meantime back
to the head of its list, where it was. So there is no polling delay, a
message is never delivered twice, and none is held by a process that is
busy with another.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

import redis

from channels import process
from channels.backends.redis.shard import (
    CONNECTION_ERRORS,
    POP_MARGIN,
    READ_TIMEOUT,
    REFUSALS,
    REFUSED,
    Shard,
)
from channels.exceptions import ChannelBackendUnavailable

logger = logging.getLogger("channels.backends.redis")

# How often to repeat an UNBLOCK that came before its pop had started.
UNBLOCK_RETRY = 0.002
# What a pop cancelled before it was sent returns.
CANCELLED = object()


class Blocker:
    """One shard's blocking connection, and the thread that waits on it."""

    def __init__(self, shard: Shard):
        self.shard = shard
        # The command timeout for connecting and CLIENT ID (a silent server
        # accepts connections in its kernel); each pop sets its own.
        self.connection = shard.new_connection()
        self.client_id: int | None = None
        self.cancelled = False
        self._jobs: queue.SimpleQueue | None = None

    def pop(self, keys: list[str], timeout: float, count: int) -> list | None | Exception:
        """BLMPOP up to ``count`` messages of the first of ``keys`` that has
        any, waiting up to ``timeout`` seconds (0: no limit): ``[key,
        [message, ...]]``, None if nothing came, CANCELLED if it was released
        before it began, the connection error, or the server's refusal (a
        master short of replicas refuses pops) as ChannelBackendUnavailable."""
        for attempt in range(2):
            fresh = self.client_id is None
            try:
                if fresh:
                    self.connection.connect()
                    self.connection.send_command("CLIENT", "ID")
                    self.client_id = self.connection.read_response(timeout=READ_TIMEOUT)
                if self.cancelled:
                    return CANCELLED
                self.connection.send_packed_command(self.shard.pack(
                    "BLMPOP", f"{timeout:.3f}", len(keys), *keys, "LEFT", "COUNT", count))
                # A server that stopped answering is found out in bounded
                # time: a wait that ran out is answered within POP_MARGIN
                # (a pop with no time limit waits as long as it takes).
                return self.connection.read_response(
                    timeout=timeout + POP_MARGIN if timeout else None)
            except CONNECTION_ERRORS as exc:
                self.connection.disconnect()
                self.client_id = None
                # A connection that went stale (a restarted server) is
                # retried once; a fresh one failing means the shard is down.
                if fresh or attempt:
                    return exc
            except redis.ResponseError as exc:
                if isinstance(exc, REFUSALS) or str(exc).startswith(REFUSED):
                    return self.shard.refused(exc)
                raise
        raise AssertionError("unreachable")

    def submit(self, keys: list[str], timeout: float, count: int,
               results: queue.SimpleQueue) -> None:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(self._jobs,), daemon=True,
                             name=f"channels-redis-blocker-{self.shard.address.label}").start()
        self.cancelled = False
        self._jobs.put((keys, timeout, count, results))

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        while (job := jobs.get()) is not None:
            keys, timeout, count, results = job
            results.put((self, self.pop(keys, timeout, count)))

    def unblock(self) -> None:
        self.cancelled = True
        client_id = self.client_id
        if client_id is not None:
            try:
                self.shard.execute_packed(self.shard.pack("CLIENT", "UNBLOCK", client_id),
                                          READ_TIMEOUT)
            except ChannelBackendUnavailable:
                pass  # the pop's own connection reports the outage

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
        self.connection.disconnect()
        self.client_id = None


class BlockerSet:
    """One blocking connection per shard, for one waiting caller at a time.

    ``on_free(self)`` is called when the set can serve another caller: at
    once after a wait on one shard, and after a wait on several once every
    pop has ended, which a background thread sees to so that the caller
    has its message without waiting for the other pops to be released.
    """

    def __init__(self, on_free: Callable[[BlockerSet], None]) -> None:
        self.blockers: dict[int, Blocker] = {}
        self.on_free = on_free

    def blocker(self, shard: Shard) -> Blocker:
        blocker = self.blockers.get(shard.index)
        if blocker is None:
            blocker = self.blockers[shard.index] = Blocker(shard)
        return blocker

    def wait(self, plan: dict[Shard, list[str]], timeout: float, count: int,
             push_back: Callable) -> tuple[Shard, bytes, list[bytes]] | None:
        """Block on every shard of ``plan`` (shard: keys) for ``timeout``
        seconds (0: no limit); ``(shard, key, messages)`` of the first pop to
        take any (at most ``count``), or None. ``push_back(shard, key,
        messages)`` returns messages that lost the race. Raises the shard's
        ChannelBackendUnavailable if every shard failed."""
        if len(plan) == 1:
            ((shard, keys),) = plan.items()
            blocker = self.blocker(shard)
            blocker.cancelled = False
            result = blocker.pop(keys, timeout, count)
            self.on_free(self)
            return self._outcome(shard, result, raise_error=True)
        results: queue.SimpleQueue = queue.SimpleQueue()
        pending = set()
        for shard, keys in plan.items():
            blocker = self.blocker(shard)
            blocker.submit(keys, timeout, count, results)
            pending.add(blocker)
        failures = []
        while pending:
            blocker, result = results.get()
            pending.discard(blocker)
            if isinstance(result, Exception):
                failures.append((blocker.shard, result))
            winner = self._outcome(blocker.shard, result)
            if winner is not None:
                if pending:
                    _drainer().submit(self._release, pending, results, push_back)
                else:
                    self.on_free(self)
                return winner
        self.on_free(self)
        if len(failures) == len(plan):
            shard, error = failures[0]
            if isinstance(error, ChannelBackendUnavailable):
                raise error
            raise shard.unavailable(error) from error
        return None

    @staticmethod
    def _outcome(shard: Shard, result: list | None | Exception,
                 raise_error: bool = False) -> tuple[Shard, bytes, list[bytes]] | None:
        if isinstance(result, ChannelBackendUnavailable):  # refused: the shard is up
            if raise_error:
                raise result
            return None
        if isinstance(result, Exception):
            shard.failed(result)
            if raise_error:
                raise shard.unavailable(result) from result
            return None
        if result is CANCELLED:  # never reached the server: tells nothing
            return None
        if shard.down:
            shard.recovered()
        return None if result is None else (shard, *result)

    def _release(self, pending: set[Blocker], results: queue.SimpleQueue,
                 push_back: Callable) -> None:
        """End the pops that lost the race, giving back what they took."""
        try:
            for blocker in pending:
                blocker.unblock()
            while pending:
                try:
                    blocker, result = results.get(timeout=UNBLOCK_RETRY)
                except queue.Empty:
                    # An UNBLOCK that came before its pop began: again.
                    for blocker in pending:
                        blocker.unblock()
                    continue
                pending.discard(blocker)
                got = self._outcome(blocker.shard, result)
                if got is not None:
                    push_back(*got)
        finally:
            self.on_free(self)

    def close(self) -> None:
        for blocker in self.blockers.values():
            blocker.close()


class _Drainer:
    """The thread that releases the losing pops of waits on several shards."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, daemon=True,
                         name="channels-redis-drainer").start()

    def submit(self, function: Callable, *args: Any) -> None:
        self.jobs.put((function, args))

    def _serve(self) -> None:
        while True:
            function, args = self.jobs.get()
            try:
                function(*args)
            except Exception:
                logger.exception("Could not release a wait on Redis shards")


# This process's drainer (a forked child starts its own).
_drainer = process.PerProcess(_Drainer)
