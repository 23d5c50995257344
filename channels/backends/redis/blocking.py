"""Waiting for a message on several shards at once.

Redis can only block a connection on keys of its own server. To wait on S
shards, one dedicated connection per shard blocks (BLPOP) in its own thread;
the first message to arrive wins, the other pops are released at once with
``CLIENT UNBLOCK`` from an ordinary connection, and a message that another
pop took in the meantime is pushed back to the head of its list, where it
was. So there is no polling delay, a message is never delivered twice, and
none is held by a process that is busy with another.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable

from channels.backends.redis.shard import CONNECTION_ERRORS, Shard
from channels.exceptions import ChannelBackendUnavailable

# How often to repeat an UNBLOCK that came before its pop had started.
UNBLOCK_RETRY = 0.002


class Blocker:
    """One shard's blocking connection, and the thread that waits on it."""

    def __init__(self, shard: Shard):
        self.shard = shard
        # No socket timeout: waiting long is what this connection is for.
        self.connection = shard.new_connection(socket_timeout=None)
        self.client_id: int | None = None
        self.cancelled = False
        self._jobs: queue.SimpleQueue | None = None

    def pop(self, keys: list[str], timeout: float) -> list | None | Exception:
        """BLPOP ``keys`` for ``timeout`` seconds (0: no limit): ``[key,
        message]``, None if nothing came, or the connection error."""
        for attempt in range(2):
            fresh = self.client_id is None
            try:
                if fresh:
                    self.connection.connect()
                    self.connection.send_command("CLIENT", "ID")
                    self.client_id = self.connection.read_response()
                if self.cancelled:
                    return None
                self.connection.send_command("BLPOP", *keys, f"{timeout:.3f}")
                return self.connection.read_response()
            except CONNECTION_ERRORS as exc:
                self.connection.disconnect()
                self.client_id = None
                # A connection that went stale (a restarted server) is
                # retried once; a fresh one failing means the shard is down.
                if fresh or attempt:
                    return exc
        raise AssertionError("unreachable")

    def submit(self, keys: list[str], timeout: float, results: queue.SimpleQueue) -> None:
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(self._jobs,), daemon=True,
                             name=f"channels-redis-blocker-{self.shard.address.label}").start()
        self.cancelled = False
        self._jobs.put((keys, timeout, results))

    def _serve(self, jobs: queue.SimpleQueue) -> None:
        while (job := jobs.get()) is not None:
            keys, timeout, results = job
            results.put((self, self.pop(keys, timeout)))

    def unblock(self) -> None:
        self.cancelled = True
        client_id = self.client_id
        if client_id is not None:
            try:
                self.shard.execute("CLIENT", "UNBLOCK", client_id)
            except ChannelBackendUnavailable:
                pass  # the pop's own connection reports the outage

    def close(self) -> None:
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None
        self.connection.disconnect()
        self.client_id = None


class BlockerSet:
    """One blocking connection per shard, for one waiting caller at a time."""

    def __init__(self) -> None:
        self.blockers: dict[int, Blocker] = {}

    def blocker(self, shard: Shard) -> Blocker:
        blocker = self.blockers.get(shard.index)
        if blocker is None:
            blocker = self.blockers[shard.index] = Blocker(shard)
        return blocker

    def wait(self, plan: dict[Shard, list[str]], timeout: float,
             push_back) -> tuple[Shard, bytes, bytes] | None:
        """Block on every shard of ``plan`` (shard: keys) for ``timeout``
        seconds (0: no limit); ``(shard, key, message)`` of the first message,
        or None. ``push_back(shard, key, message)`` returns a message that
        lost the race. Raises the shard's ChannelBackendUnavailable if every
        shard failed."""
        if len(plan) == 1:
            ((shard, keys),) = plan.items()
            result = self.blocker(shard).pop(keys, timeout)
            if isinstance(result, Exception):
                shard.failed(result)
                raise shard.unavailable(result) from result
            if shard.down:
                shard.recovered()
            return None if result is None else (shard, *result)
        results: queue.SimpleQueue = queue.SimpleQueue()
        pending = set()
        for shard, keys in plan.items():
            blocker = self.blocker(shard)
            blocker.submit(keys, timeout, results)
            pending.add(blocker)
        winner = None
        failures = []
        while pending:
            try:
                blocker, result = results.get(timeout=None if winner is None else UNBLOCK_RETRY)
            except queue.Empty:
                self._unblock(pending)
                continue
            pending.discard(blocker)
            shard = blocker.shard
            if isinstance(result, Exception):
                shard.failed(result)
                failures.append((shard, result))
                continue
            if shard.down:
                shard.recovered()
            if result is None:
                continue
            if winner is None:
                winner = (shard, *result)
                self._unblock(pending)
            else:
                push_back(shard, *result)
        if winner is None and len(failures) == len(plan):
            shard, error = failures[0]
            raise shard.unavailable(error) from error
        return winner

    @staticmethod
    def _unblock(blockers: Iterable[Blocker]) -> None:
        for blocker in blockers:
            blocker.unblock()

    def close(self) -> None:
        for blocker in self.blockers.values():
            blocker.close()
