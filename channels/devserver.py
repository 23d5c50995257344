"""A whole channels site in one process: the interface server on the
reactor thread and a pool of worker threads, sharing one backend.

``runserver`` and ``ChannelLiveServerTestCase`` run this, which is why the
in-memory backend (it cannot be shared between processes) is enough for
development and tests.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

from channels.backends.base import BaseChannelBackend
from channels.message import Message
from channels.worker import metrics as worker_metrics
from channels.worker.loop import Worker

logger = logging.getLogger("channels.devserver")


class _PoolWorker(Worker):
    """A worker that tells its pool when it runs a consumer."""

    def __init__(self, pool: WorkerPool, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.pool = pool

    def handle(self, channel: str, content: dict) -> None:
        with self.pool.running():
            super().handle(channel, content)


class WorkerPool:
    """``count`` workers on threads, listening on every routed channel.

    ``connections_override`` gives the threads database connections to use
    instead of their own, as Django's live server threads get them: an
    in-memory SQLite test database exists only in its one connection. One
    connection cannot run two transactions at once, so then the workers take
    turns, one consumer at a time, and ``quiet()`` keeps them off it while
    the test's own thread resets the database.
    """

    def __init__(self, backend: BaseChannelBackend, count: int,
                 callback: Callable[[str, Message], None] | None = None,
                 poll_timeout: float = 0.2,
                 connections_override: dict[str, BaseDatabaseWrapper] | None = None):
        if count < 1:
            raise ValueError(f"A worker pool needs at least one worker, not {count}")
        self.connections_override = connections_override or {}
        self._turn = threading.Lock() if self.connections_override else None
        self._idle = threading.Condition()
        self._busy = 0
        self._last_done = 0.0
        # One at a time: receiving from a backend in this process costs no
        # round trip, and a worker waiting for its turn would hold messages.
        self.workers = [_PoolWorker(self, backend, callback=callback, prefetch=1)
                        for _ in range(count)]
        self.threads: list[threading.Thread] = []
        for worker in self.workers:
            # How soon stop() is noticed by an idle worker.
            worker.poll_timeout = poll_timeout

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """Around each consumer run."""
        with self._turn or contextlib.nullcontext():
            with self._idle:
                self._busy += 1
            try:
                yield
            finally:
                with self._idle:
                    self._busy -= 1
                    self._last_done = time.monotonic()
                    self._idle.notify_all()

    @contextlib.contextmanager
    def quiet(self, settle: float = 0.1, timeout: float = 5.0) -> Iterator[None]:
        """Wait until no consumer has run for ``settle`` seconds (at most
        ``timeout``: a steady stream never settles), then, if the workers
        share connections, keep consumers from starting while the block
        runs."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while (now := time.monotonic()) < deadline:
                left = self._last_done + settle - now
                if not self._busy and left <= 0:
                    break
                self._idle.wait(min(max(left, 0.01), deadline - now))
        with self._turn or contextlib.nullcontext():
            yield

    def start(self) -> None:
        for number, worker in enumerate(self.workers, 1):
            # Daemons: under the autoreloader, a changed file ends the process
            # from the main thread without waiting for them.
            thread = threading.Thread(target=self.run_worker, args=(worker,),
                                      name=f"channels-worker-{number}", daemon=True)
            thread.start()
            self.threads.append(thread)

    def run_worker(self, worker: Worker) -> None:
        for alias, connection in self.connections_override.items():
            connections[alias] = connection
        try:
            worker.run()
        finally:
            connections.close_all()

    def stop(self, timeout: float = 5.0) -> None:
        """Let each worker finish the consumer in hand, then join it."""
        for worker in self.workers:
            worker.stop()
        for thread in self.threads:
            thread.join(timeout)
            if thread.is_alive():
                logger.warning("%s still runs a consumer after %s s; left behind",
                               thread.name, timeout)
        self.threads = []


class DevServer:
    """The interface server on ``host:port`` (0: a free port, see ``port``
    after ``start()``) and ``workers`` worker threads (0: none, for a
    networked backend whose workers run elsewhere).

    ``static`` serves STATIC_URL from the staticfiles finders, as Django's
    development server does (the interface server answers them itself).
    ``server_options`` are interface server options (``ServerConfig``
    fields, such as ``access_log``); see ``WorkerPool`` for
    ``connections_override``.
    """

    def __init__(self, backend: BaseChannelBackend, host: str = "127.0.0.1", port: int = 0,
                 workers: int = 4, static: bool = False,
                 callback: Callable[[str, Message], None] | None = None,
                 connections_override: dict[str, BaseDatabaseWrapper] | None = None,
                 **server_options: Any):
        self.backend = backend
        self.host = host
        self.port = port
        self.static = static
        self.server_options = server_options
        self.pool = (WorkerPool(backend, workers, callback,
                                connections_override=connections_override)
                     if workers else None)
        self.handle = None

    def start(self) -> int:
        """Start serving; returns the port. Raises what listening raised
        (``twisted.internet.error.CannotListenError``) with nothing left
        running."""
        from channels.interfaces.config import ServerConfig
        from channels.interfaces.static_files import StaticFiles
        from channels.interfaces.threaded import start_server

        static_files = StaticFiles.from_settings(finders=True)[0] if self.static else None
        if self.pool is not None:
            if ServerConfig.from_settings(**self.server_options).metrics:
                # Served with the server's (one registry); on before the
                # workers take their first message.
                worker_metrics.enable()
                worker_metrics.watch_queues(self.backend,
                                            self.backend.registry.all_channel_names())
            self.pool.start()
        try:
            self.handle = start_server(self.backend, self.host, self.port,
                                       static_files=static_files, **self.server_options)
        except BaseException:
            if self.pool is not None:
                self.pool.stop()
            raise
        self.port = self.handle.port
        return self.port

    def quiet(self) -> contextlib.AbstractContextManager[None]:
        """See ``WorkerPool.quiet``; nothing to wait for without workers."""
        return self.pool.quiet() if self.pool is not None else contextlib.nullcontext()

    def stop(self, timeout: float = 5.0) -> None:
        """Close every connection (WebSockets with 1001, their disconnect
        messages sent and consumed; requests in progress get ``timeout``
        seconds, then 503), then stop the workers."""
        if self.handle is not None:
            handle, self.handle = self.handle, None
            handle.stop(timeout)
        if self.pool is not None:
            self.pool.stop(timeout)
