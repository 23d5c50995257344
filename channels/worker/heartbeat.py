"""A worker process's heartbeat (see ``channels.heartbeats``).

One record per process and backend, however many ``Worker`` loops run in
it (``runserver``'s threads): the channels they listen on, how many there
are, what they have handled, and what they hold in hand, the message each
is running and those it took ahead, as ``[channel, reply channel]`` pairs.
An interface server that sees the record vanish answers the clients of
those reply channels itself (``channels.interfaces.liveness``), since
nobody else will: the messages went with the process.

So the record follows what the workers hold: a change is written within
``CHANGE_DELAY``, the changes meanwhile in the same write, and with no
change it is written every HEARTBEAT_INTERVAL.

The thread also reads the interface servers' records every interval, for
the reply channels whose clients they have already answered because no
worker was running (``cancelled``): a worker that starts later skips
their messages, which may still wait in the channel, rather than run a
view whose client was told 503.

And it sweeps the presences (``channels.presence.sweep``) whenever a sweep
is due: the members of interface processes whose heartbeat expired leave,
within a TTL of their process's last heartbeat. Every worker process
tries; the store lets one sweep at a time.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from channels import presence, process
from channels.backends.base import BaseChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.heartbeats import INTERFACE, RUNNING, STOPPED, WORKER, ProcessRecord

if TYPE_CHECKING:
    from channels.worker.loop import Worker

logger = logging.getLogger("channels.worker")

# The longest a change in what the workers hold waits to be written: a
# worker killed within this of taking a message leaves it out of its last
# record (its client then waits for the HTTP timeout, as before heartbeats).
# Under load that is one write per CHANGE_DELAY per process: ten a second.
CHANGE_DELAY = 0.1


class WorkerHeartbeat:
    """The record of the workers of this process on one backend, written
    by a thread that runs while any of them does."""

    def __init__(self, backend: BaseChannelBackend):
        self.backend = backend
        self.record = ProcessRecord(WORKER, backend)
        self.workers: list[Worker] = []
        # Reply channels whose clients an interface server has answered.
        self.cancelled: frozenset[str] = frozenset()
        self._workers_lock = threading.Lock()
        self._changed = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_read = 0.0
        self._next_sweep = 0.0
        self._failing = False
        self._sweep_failing = False

    # attach and detach start and stop the thread: their callers (the
    # functions below) make them one at a time.

    def attach(self, worker: Worker) -> None:
        """A worker starts: the first writes the record and reads what is
        cancelled before it takes anything, then starts the thread."""
        with self._workers_lock:
            self.workers.append(worker)
        if self._thread is not None:
            self.touch()
            return
        self.write()
        self.read_cancelled()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(self._stop,), daemon=True,
                                        name="channels-worker-heartbeat")
        self._thread.start()

    def detach(self, worker: Worker) -> bool:
        """A worker has stopped, having given back what it held. The last
        to stop writes the record as stopped; returns whether it was."""
        with self._workers_lock:
            self.workers.remove(worker)
            last = not self.workers
        if not last:
            self.touch()
            return False
        self._stop.set()
        self._changed.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.write(STOPPED)
        return True

    def touch(self) -> None:
        """What a worker holds has changed. Workers touch after every
        message: setting a set event costs a lock and a notify, and the
        writer clears it before it reads what to write, so that no change
        goes unwritten."""
        if not self._changed.is_set():
            self._changed.set()

    def _run(self, stop: threading.Event) -> None:
        interval = self.backend.heartbeat_interval
        delay = min(CHANGE_DELAY, interval / 4)
        next_write = time.monotonic() + interval
        while not stop.is_set():
            wait = max(0.0, min(next_write, self._next_sweep) - time.monotonic())
            changed = self._changed.wait(wait)
            if changed and not stop.is_set():
                stop.wait(delay)  # what changes meanwhile goes in the same write
            if stop.is_set():
                return
            now = time.monotonic()
            if changed or now >= next_write:
                self._changed.clear()
                self.write()
                next_write = now + interval
                if now >= self._next_read:
                    self.read_cancelled()
            if now >= self._next_sweep:
                self.sweep()

    def sweep(self) -> None:
        """Sweep the presences, and note when the next sweep is due."""
        interval = self.backend.heartbeat_interval
        try:
            due = presence.sweep(self.backend)
        except NotImplementedError:
            self._next_sweep = float("inf")  # a backend that keeps no presences
            return
        except Exception:
            if not self._sweep_failing:
                self._sweep_failing = True
                logger.exception("Could not sweep the presences")
            due = interval
        else:
            self._sweep_failing = False
        # Not sooner than a tenth of a second, whatever the store says.
        self._next_sweep = time.monotonic() + max(min(due, interval), CHANGE_DELAY)

    def write(self, state: str = RUNNING) -> None:
        with self._workers_lock:
            workers = list(self.workers)
        running = state == RUNNING
        record = self.record.beat(
            state,
            channels=sorted({c for worker in workers for c in worker.channels}) if running else [],
            threads=len(workers),
            handled=sum(worker.handled for worker in workers),
            errors=sum(worker.errors for worker in workers),
            skipped=sum(worker.skipped for worker in workers),
            busy=round(sum(worker.durations.total for worker in workers), 6),
            slowest=round(max((worker.durations.slowest() for worker in workers),
                              default=0.0), 6),
            in_hand=[pair for worker in workers for pair in worker.in_hand()] if running else [],
        )
        try:
            self.backend.set_heartbeat(WORKER, self.record.id, record)
        except ChannelBackendUnavailable:
            pass  # the backend logs its outages
        except Exception:
            if not self._failing:
                self._failing = True
                logger.exception("Could not write this worker's heartbeat")
        else:
            self._failing = False

    def read_cancelled(self) -> None:
        self._next_read = time.monotonic() + self.backend.heartbeat_interval
        try:
            records = self.backend.heartbeats(INTERFACE).records
        except Exception:
            return  # keep what was read last; the backend logs its outages
        self.cancelled = frozenset(name for record in records
                                   for name in record.get("cancelled", ())
                                   if isinstance(name, str))


# This process's heartbeats, by backend; a forked child starts its own.
_heartbeats: dict[tuple[int, int], WorkerHeartbeat] = {}
_heartbeats_lock = threading.Lock()


def _reset_after_fork() -> None:
    # A lock held by another thread at the fork stays held in the child.
    global _heartbeats_lock
    _heartbeats_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def attach(worker: Worker) -> WorkerHeartbeat:
    """The heartbeat of ``worker``'s backend in this process, with
    ``worker`` counted in it."""
    backend = worker.channel_backend
    key = (id(backend), process.pid)
    with _heartbeats_lock:
        heartbeat = _heartbeats.get(key)
        if heartbeat is None or heartbeat.backend is not backend:
            heartbeat = _heartbeats[key] = WorkerHeartbeat(backend)
        heartbeat.attach(worker)
    return heartbeat


def detach(worker: Worker, heartbeat: WorkerHeartbeat) -> None:
    with _heartbeats_lock:
        if heartbeat.detach(worker):
            key = (id(heartbeat.backend), process.pid)
            if _heartbeats.get(key) is heartbeat:
                del _heartbeats[key]
