"""``runworker --processes M``: M worker processes, kept running.

The children are started with ``multiprocessing``'s *spawn* method: each
is a fresh interpreter that sets Django up itself, so nothing the
supervisor holds (threads, sockets, Redis connections) is copied into it
half-way, as a fork could. The supervisor does no work of its own: it
starts the children, restarts one that dies (after a delay that doubles
while they keep dying, logged once per incident), replaces one that
reached ``--max-messages`` (it goes on until its replacement runs, so the
slot is never empty), and passes signals on:

- SIGTERM or SIGINT: every child stops taking messages, finishes those in
  hand (each within its ``--shutdown-timeout``), and the supervisor exits
  once all have;
- SIGHUP: the children are replaced one at a time, each new one running
  before the old one is told to stop, so new code is loaded while as many
  children as ever take messages.

A child notices when the supervisor goes (its end of the pipe between them
closes) and stops as on SIGTERM, so none outlives it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection, wait

from channels.worker import service
from channels.worker.service import WorkerOptions

logger = logging.getLogger("channels.worker")

# A child that dies is started again after RESTART_DELAY; while they keep
# dying, each within STABLE_AFTER of its start, the delay doubles up to
# MAX_RESTART_DELAY and the deaths after the first are not logged again.
RESTART_DELAY = 0.5
MAX_RESTART_DELAY = 30.0
STABLE_AFTER = 30.0

# How long a SIGHUP waits for a new child to run before it gives up on it
# and keeps the old one.
START_TIMEOUT = 120.0

# How much longer than their shutdown timeout stopping children get before
# they are killed: they exit by themselves at the timeout.
STOP_GRACE = 10.0

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def child_main(options: WorkerOptions, slot: int, conn: Connection) -> None:
    """A child process: Django set up, then one worker process, which tells
    the supervisor it runs by sending its pid on ``conn``, and that it
    reached its message limit by sending "limit"."""
    import django

    django.setup()
    from channels.backends import channel_backends

    backend = channel_backends[options.alias]
    worker = service.make_worker(backend, options)
    worker.install_signal_handlers()
    if options.metrics_address:
        try:
            service.serve_metrics(backend, options.channels,
                                  service.nth_address(options.metrics_address, slot),
                                  service.print_line)
        except OSError:
            logger.exception("Worker process %d cannot serve its metrics; it runs without",
                             slot)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the supervisor's to act on
    worker.on_limit = lambda: conn.send("limit")
    # Running once its heartbeat says so: an old child stopped for this
    # one then never leaves the interface servers seeing no worker.
    worker.on_started = lambda: conn.send(os.getpid())
    threading.Thread(target=_watch_supervisor, args=(conn, worker), daemon=True,
                     name="channels-worker-supervised").start()
    service.run(worker, options.shutdown_timeout)
    sys.exit(0)


def _watch_supervisor(conn: Connection, worker) -> None:
    try:
        conn.recv()  # the supervisor never sends: this waits for it to go
    except (EOFError, OSError):
        pass
    worker.stop()


class Child:
    """One worker process of the supervisor, in ``slot`` (1 to M)."""

    def __init__(self, slot: int, process: multiprocessing.process.BaseProcess,
                 conn: Connection):
        self.slot = slot
        self.process = process
        self.conn = conn
        self.started = time.monotonic()
        self.ready = False
        self.stopping = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        if not self.stopping and self.process.exitcode is None:
            self.stopping = True
            os.kill(self.pid, signal.SIGTERM)

    def exit_reason(self) -> str:
        code = self.process.exitcode
        if code is not None and code < 0:
            return f"was killed by {signal.Signals(-code).name}"
        return f"exited with status {code}"


class Supervisor:
    """``processes`` children running ``options``; ``out`` prints what
    operators follow (each child started, stopped, replaced)."""

    def __init__(self, options: WorkerOptions, processes: int,
                 out: Callable[[str], None] = print):
        if processes < 1:
            raise ValueError(f"processes must be at least 1, not {processes}")
        self.options = options
        self.processes = processes
        self.out = out
        self.context = multiprocessing.get_context("spawn")
        self.children: dict[int, Child] = {}  # the current child of each slot
        self.retiring: list[Child] = []  # told to stop, not gone yet
        self.replacing: Child | None = None  # a reload's new child, not running yet
        self.draining: Child | None = None  # the old child a reload waits for
        self.reloads: list[int] = []  # slots a reload has still to replace
        self.restart_at: dict[int, float] = {}
        self.delays: dict[int, float] = {}
        self.incidents: set[int] = set()
        self.signals: list[int] = []
        self.stopping = False
        self.announced = False

    def start(self, slot: int) -> Child:
        ours, theirs = self.context.Pipe()
        process = self.context.Process(target=child_main, args=(self.options, slot, theirs),
                                       name=f"channels-worker-{slot}")
        process.start()
        theirs.close()
        return Child(slot, process, ours)

    def live(self) -> list[Child]:
        children = [*self.children.values(), *self.retiring]
        if self.replacing is not None:
            children.append(self.replacing)
        return children

    def run(self) -> int:
        """Until SIGTERM or SIGINT, then until every child has stopped."""
        wakeup_read, wakeup_write = socket.socketpair()
        wakeup_read.setblocking(False)
        wakeup_write.setblocking(False)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in SIGNALS}
        previous_fd = signal.set_wakeup_fd(wakeup_write.fileno(), warn_on_full_buffer=False)
        try:
            for slot in range(1, self.processes + 1):
                self.children[slot] = self.start(slot)
            self._supervise(wakeup_read)
            self._drain(wakeup_read)
        finally:
            signal.set_wakeup_fd(previous_fd)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            wakeup_read.close()
            wakeup_write.close()
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self.signals.append(signum)  # acted on by the loop, woken by the fd

    def _supervise(self, wakeup: socket.socket) -> None:
        while True:
            while self.signals:
                signum = self.signals.pop(0)
                if signum != signal.SIGHUP:
                    self.out(f"Stopping {len(self.live())} worker process(es)...")
                    return
                self.out("Reloading: replacing the worker processes one at a time")
                self.reloads = sorted(self.children)
            self._note_ready()
            self._reap()
            self._restart_due()
            self._reload_step()
            self._wait(wakeup)

    def _wait(self, wakeup: socket.socket, timeout: float = 1.0) -> None:
        now = time.monotonic()
        if self.restart_at:
            timeout = max(0.0, min(timeout, min(self.restart_at.values()) - now))
        waitables = [wakeup, *(child.process.sentinel for child in self.live()),
                     *(child.conn for child in self.live() if child.process.exitcode is None)]
        if wakeup in wait(waitables, timeout):
            try:
                while wakeup.recv(64):
                    pass
            except BlockingIOError:
                pass

    def _note_ready(self) -> None:
        """What the children said: that they run (their pid), or that they
        reached their message limit (they go on until replaced)."""
        for child in self.live():
            if child.process.exitcode is not None or not child.conn.poll():
                continue
            try:
                said = child.conn.recv()
            except (EOFError, OSError):
                continue  # it died: _reap sees to it
            if said == "limit":
                self.out(f"Worker process {child.slot} (pid {child.pid}) reached its "
                         f"message limit; replacing it")
                if child.slot not in self.reloads:
                    self.reloads.append(child.slot)
                continue
            child.ready = True
            self.out(f"Worker process {child.slot} (pid {child.pid}) is running")
        if not self.announced and len(self.children) == self.processes and all(
                child.ready for child in self.children.values()):
            self.announced = True
            options = self.options
            self.out(f"Running {self.processes} worker process(es) of {options.threads} "
                     f"thread(s) on backend {options.alias!r}, listening on: "
                     f"{', '.join(options.channels)}")

    def _reap(self) -> None:
        for child in self.live():
            if child.process.exitcode is None:
                continue
            child.process.join()
            child.conn.close()
            if child in self.retiring:
                self.retiring.remove(child)
                if child is self.draining:
                    self.draining = None
                self.out(f"Worker process {child.slot} (pid {child.pid}) stopped")
            elif child is self.replacing:
                self.replacing = None
                logger.error("A new worker process %d (pid %d) %s before it ran; the old one "
                             "keeps running", child.slot, child.pid, child.exit_reason())
            else:
                del self.children[child.slot]
                self._replace(child)

    def _replace(self, child: Child) -> None:
        slot, now = child.slot, time.monotonic()
        if child.process.exitcode == 0:
            # Asked by nobody: it was stopped from outside.
            self.out(f"Worker process {slot} (pid {child.pid}) stopped; starting another")
            self.children[slot] = self.start(slot)
            return
        if now - child.started >= STABLE_AFTER:
            self.incidents.discard(slot)
            self.delays.pop(slot, None)
        delay = self.delays[slot] = min(self.delays.get(slot, RESTART_DELAY / 2) * 2,
                                        MAX_RESTART_DELAY)
        self.restart_at[slot] = now + delay
        if slot in self.incidents:
            logger.debug("Worker process %d (pid %d) %s again; starting another in %.1f s",
                         slot, child.pid, child.exit_reason(), delay)
            return
        self.incidents.add(slot)
        logger.error("Worker process %d (pid %d) %s; starting another in %.1f s (the delay "
                     "doubles, up to %g s, while they keep dying within %g s of starting; "
                     "not logged again until one has run that long)",
                     slot, child.pid, child.exit_reason(), delay, MAX_RESTART_DELAY,
                     STABLE_AFTER)

    def _restart_due(self) -> None:
        now = time.monotonic()
        for slot, at in list(self.restart_at.items()):
            if at <= now:
                del self.restart_at[slot]
                self.children[slot] = self.start(slot)

    def _reload_step(self) -> None:
        new = self.replacing
        if new is not None:
            if new.ready:
                old = self.children.get(new.slot)
                self.children[new.slot] = new
                self.replacing = None
                if old is not None:
                    old.stop()
                    self.retiring.append(old)
                    self.draining = old
            elif time.monotonic() - new.started > START_TIMEOUT:
                logger.error("A new worker process %d (pid %d) did not run within %g s; "
                             "the old one keeps running", new.slot, new.pid, START_TIMEOUT)
                new.process.kill()
            return
        if self.draining is None and self.reloads:
            slot = self.reloads.pop(0)
            if slot in self.children:  # else it is waiting for a restart, with new code
                self.replacing = self.start(slot)

    def _drain(self, wakeup: socket.socket) -> None:
        for child in self.live():
            child.stop()
        deadline = time.monotonic() + self.options.shutdown_timeout + STOP_GRACE
        while self.live() and time.monotonic() < deadline:
            self._wait(wakeup)
            for child in self.live():
                if child.process.exitcode is not None:
                    child.process.join()
                    child.conn.close()
                    self._forget(child)
                    self.out(f"Worker process {child.slot} (pid {child.pid}) stopped")
        for child in self.live():
            logger.error("Worker process %d (pid %d) did not stop; killed", child.slot,
                         child.pid)
            child.process.kill()
            child.process.join()
            self._forget(child)

    def _forget(self, child: Child) -> None:
        if child in self.retiring:
            self.retiring.remove(child)
        elif child is self.replacing:
            self.replacing = None
        elif self.children.get(child.slot) is child:
            del self.children[child.slot]
