"""One receive loop feeding several consumer threads (``runworker --threads``).

Consumers that wait (on the database, on an outside API) leave a core idle
while they do; threads let one process run several of them at once, as a
threaded WSGI server does. The loop takes as many messages as there are
idle threads and no more, so a message is never held by a process whose
threads are all busy while another process has one free: nothing is
taken ahead, and the take-ahead rules of ``Worker`` (PREFETCH) do not apply.

Each thread runs its messages through a ``Worker`` of its own (its counts,
what it holds, its Django database connections, closed when the thread
ends), so the process's heartbeat counts one worker per thread. Ordering and
channel sessions need nothing more: ``@linearize`` and
``@enforce_ordering`` lock the connection in the backend, whichever thread
or process runs its message.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable

from django.db import connections

from channels.backends.base import BaseChannelBackend
from channels.message import Message
from channels.worker.loop import Worker

Inbox = queue.SimpleQueue


class ThreadedWorker(Worker):
    """``threads`` consumer threads behind this worker's one receive loop.

    It is a ``Worker`` for its callers: ``run()``, ``stop()``, signals and
    ``max_messages`` behave alike; ``handled`` and the other counts are
    summed over the threads' workers (``thread_workers``).
    """

    def __init__(self, channel_backend: BaseChannelBackend,
                 callback: Callable[[str, Message], None] | None = None,
                 channels: Iterable[str] | None = None, threads: int = 2,
                 max_messages: int | None = None):
        if not isinstance(threads, int) or threads < 1:
            raise ValueError(f"threads must be a positive integer, not {threads!r}")
        super().__init__(channel_backend, callback, channels, prefetch=1,
                         max_messages=max_messages)
        self.thread_workers = [Worker(channel_backend, callback, self.channels, prefetch=1)
                               for _ in range(threads)]
        # The idle threads' workers and inboxes (a stack: the thread that
        # finished last runs next, so the fewest threads hold connections).
        self._idle: list[tuple[Worker, Inbox]] = []
        self._idle_changed = threading.Condition()

    @property
    def idle(self) -> int:
        with self._idle_changed:
            return len(self._idle)

    def counts(self) -> dict[str, int]:
        """Consumers run, those that raised, and messages skipped, summed
        over the threads."""
        return {name: sum(getattr(worker, name) for worker in self.thread_workers)
                for name in ("handled", "errors", "skipped")}

    def run(self) -> None:
        threads = []
        for number, worker in enumerate(self.thread_workers, 1):
            worker.attach()
            inbox: Inbox = queue.SimpleQueue()
            self._idle.append((worker, inbox))
            thread = threading.Thread(target=self._consume, args=(worker, inbox),
                                      name=f"channels-worker-{number}", daemon=True)
            thread.start()
            threads.append((thread, inbox))
        self.started()
        try:
            self._dispatch()
        finally:
            # Each thread finishes the message in hand, then ends.
            for _, inbox in threads:
                inbox.put(None)
            for thread, _ in threads:
                thread.join()
            for worker in self.thread_workers:
                worker.detach()
            self.handled = self.counts()["handled"]

    def _dispatch(self) -> None:
        while not self.stopping and not self.limit_reached():
            with self._idle_changed:
                if not self._idle:
                    # Wakes when a thread is done, or to look for a stop.
                    self._idle_changed.wait(self.poll_timeout)
                    continue
                idle = len(self._idle)
            for message in self.receive(self.room(idle)):
                with self._idle_changed:
                    worker, inbox = self._idle.pop()
                worker.take(message)
                inbox.put(message)

    def _consume(self, worker: Worker, inbox: Inbox) -> None:
        try:
            while (message := inbox.get()) is not None:
                worker.serve(*message)
                with self._idle_changed:
                    self._idle.append((worker, inbox))
                    self._idle_changed.notify()
        finally:
            # As a threaded WSGI server's thread: its connections end with it.
            connections.close_all()

    def in_hand(self) -> list[list[str]]:
        return [pair for worker in self.thread_workers for pair in worker.in_hand()]
