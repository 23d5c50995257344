"""One worker process as ``runworker`` runs it: its worker (one thread or
several), its signals, its recycling and its shutdown deadline.

``runworker`` runs this in its own process, or, with ``--processes`` (or
``--max-messages``), in each child of ``channels.worker.supervisor``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Callable

from channels import process
from channels.backends.base import BaseChannelBackend
from channels.message import Message
from channels.metrics import parse_address, watch_shards
from channels.worker import metrics
from channels.worker.loop import Worker
from channels.worker.take_ahead import PREFETCH
from channels.worker.threads import ThreadedWorker

logger = logging.getLogger("channels.worker")

# How long a stopped worker's consumers may still run (runworker
# --shutdown-timeout): as long as the interface server gives requests in
# progress (its SHUTDOWN_TIMEOUT), since their clients wait for both.
SHUTDOWN_TIMEOUT = 30.0

# The exit status of a worker process that stopped with consumers still
# running after the shutdown timeout.
CUT_OFF = 3


@dataclasses.dataclass
class WorkerOptions:
    """What ``runworker`` was told, for each process it runs. Plain data:
    it travels to the supervisor's children."""

    alias: str
    channels: list[str]
    threads: int = 1
    prefetch: int = PREFETCH
    max_messages: int = 0  # 0: no limit
    max_messages_jitter: int = 0
    shutdown_timeout: float = SHUTDOWN_TIMEOUT
    verbose: bool = False
    metrics_address: str | None = None

    def message_limit(self) -> int | None:
        """This process's limit: ``max_messages`` plus a random jitter, so
        that processes started together are not replaced together."""
        if not self.max_messages:
            return None
        return self.max_messages + process.random().randint(0, self.max_messages_jitter)


def nth_address(address: str, number: int) -> str:
    """The metrics address of the supervisor's process ``number`` (from
    1): the port plus ``number - 1``, so each has its own (a port 0 stays
    0: any free one)."""
    host, port = parse_address(address)
    if port:
        port += number - 1
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serve_metrics(backend: BaseChannelBackend, channels: list[str], address: str,
                  write: Callable[[str], object]) -> None:
    """Count this process's workers in Prometheus metrics, served at
    ``address``; raises OSError if it cannot listen there."""
    metrics.enable()
    watch_shards(backend)
    metrics.watch_queues(backend, channels)
    server = metrics.serve(address)
    host, port = server.server_address[:2]
    shown = f"[{host}]" if ":" in host else host
    write(f"Metrics at http://{shown}:{port}/metrics")


def reporter(write: Callable[[str], object]) -> Callable[[str, Message], None]:
    """``-v 2``: a callback that writes a line for each message handled."""

    def report(channel: str, message: Message) -> None:
        reply = message.reply_channel.name if message.reply_channel else "-"
        write(f"{channel} (reply: {reply})")

    return report


def print_line(line: str) -> None:
    print(line, flush=True)


def make_worker(backend: BaseChannelBackend, options: WorkerOptions,
                write: Callable[[str], object] = print_line) -> Worker:
    """One thread: the plain loop, which takes up to ``prefetch`` ahead;
    more: a ``ThreadedWorker``, which takes no more than its idle threads
    can start. When ``verbose``, each message is reported with ``write``."""
    callback = reporter(write) if options.verbose else None
    limit = options.message_limit()
    if options.threads == 1:
        return Worker(backend, callback=callback, channels=options.channels,
                      prefetch=options.prefetch, max_messages=limit)
    return ThreadedWorker(backend, callback=callback, channels=options.channels,
                          threads=options.threads, max_messages=limit)


def run(worker: Worker, shutdown_timeout: float) -> None:
    """Run ``worker`` until a signal (SIGTERM, SIGINT) or its message limit
    stops it. Once stopped, its consumers have ``shutdown_timeout`` seconds
    to finish; then the process exits at once with status CUT_OFF, and
    its heartbeat, still listing what it held, expires as a dead worker's
    does, so the interface servers answer those clients (docs/heartbeats.rst)."""
    finished = threading.Event()
    threading.Thread(target=_deadline, args=(worker, finished, shutdown_timeout),
                     daemon=True, name="channels-worker-deadline").start()
    try:
        worker.run()
    finally:
        finished.set()


def _deadline(worker: Worker, finished: threading.Event, timeout: float) -> None:
    # A signal handler only sets a flag (see Worker): look at it now and then.
    while not worker.stopping:
        if finished.wait(worker.poll_timeout):
            return
    logger.info("Worker stopping: %d message(s) in hand, to finish within %g s",
                len(worker.in_hand()), timeout)
    if finished.wait(timeout):
        return
    held = len(worker.in_hand())
    logger.error("Consumers still running %g s after the worker was stopped "
                 "(--shutdown-timeout); exiting without them (%d message(s) in hand)",
                 timeout, held)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(CUT_OFF)
