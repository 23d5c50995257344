"""What the interface server knows of the workers, from their heartbeats
(``channels.heartbeats``), and its own heartbeat.

Every HEARTBEAT_INTERVAL the server reads the workers' records through
its layer client (never blocking the reactor) and writes its own; and it
reads them again as soon as the first of them is due to expire, so that a
worker that died is known to be gone within HEARTBEAT_TTL of its last
heartbeat. From what it reads:

* A channel that requests need (``http.request``; ``websocket.connect``
  when routed) that no running worker listens on is *missing*: the server
  logs it once, answers new requests 503 ("No worker is running", with
  Retry-After) without sending them, and answers the clients still
  waiting for a first answer on it the same way. Their reply channels go
  into its record's ``cancelled`` list, which workers read, so that a
  worker that starts later skips their messages instead of running a view
  whose client was told 503. Once a worker listens on it again, the
  server logs that once and serves it. While a channel is missing, the
  records are read every ``MISSING_POLL`` seconds.
* A worker whose record is gone (not one that wrote itself stopped) has
  died, and the messages its last record held in hand went with it: the
  server answers those of its own clients (their reply channels are its
  own) that still wait: HTTP 503, a WebSocket handshake 503, an open
  WebSocket whose ``websocket.receive`` was lost closed with 1011. A
  message that a running worker holds now is left to it.

Nothing is concluded from a record's absence before the backend has held
heartbeats for a whole TTL (``Heartbeats.complete``: a Redis server that
restarted a second ago has not had every record written again yet), nor
by a server that has not read them yet: until then it serves as if
workers ran. A backend that keeps no heartbeats leaves all of this off.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from channels.backends.encoding import encode
from channels.backends.heartbeats import Heartbeats
from channels.exceptions import ChannelBackendUnavailable
from channels.heartbeats import INTERFACE, RUNNING, STOPPED, WORKER, ProcessRecord, consumers

if TYPE_CHECKING:
    from channels.interfaces.layer import LayerBridge
    from channels.interfaces.server import ChannelServer

logger = logging.getLogger("channels.server")

NO_WORKER = "No worker is running"
WORKER_LOST = "The worker handling this request stopped"
# While a needed channel has no worker, its records are read this often.
MISSING_POLL = 1.0
# A record due to expire is read again this long after it should have.
EXPIRY_MARGIN = 0.05
# The most reply channels a record lists as cancelled; each stays for the
# backend's EXPIRY, after which its message cannot be waiting any more.
MAX_CANCELLED = 5000


class Watched(Protocol):
    """A client whose messages a worker may hold: an HTTP request or a
    WebSocket, by its reply channel."""

    def waiting_on(self) -> str | None:
        """The channel whose first answer it waits for, if it does."""

    def worker_lost(self, channel: str, reason: str) -> None:
        """Its message on ``channel`` will never be answered."""


class WorkerView:
    """The workers as the last reads of their heartbeats show them. No
    I/O: ``update`` takes what was read and says which workers died."""

    def __init__(self) -> None:
        # id: last record of each running worker; None until a complete read.
        self.running: dict[str, dict[str, Any]] | None = None
        # The channels they listen on, and the reply channels they hold.
        self.consumed: set[str] = set()
        self.held: set[str] = set()
        # Seconds until the first of them expires, as of the last read.
        self.next_expiry: float | None = None

    def update(self, heartbeats: Heartbeats) -> list[dict[str, Any]]:
        """Take in a read; return the last records of the workers that died
        since the last one (never from an incomplete read)."""
        records = [record for record in heartbeats.records
                   if isinstance(record.get("id"), str)]
        running = {record["id"]: record for record in records
                   if record.get("state") == RUNNING}
        present = {record["id"] for record in records}
        died = []
        if heartbeats.complete:
            if self.running is not None:
                died = [record for id, record in self.running.items() if id not in present]
        elif self.running is not None:
            # Only what is there counts: keep those who may be missing.
            running = {**{id: record for id, record in self.running.items()
                          if id not in present}, **running}
        else:
            running = None
        self.running = running
        self.consumed = consumers(list(running.values())) if running is not None else set()
        self.held = {pair[1] for record in (running or {}).values()
                     for pair in record.get("in_hand", ()) if len(pair) == 2}
        expiries = [record["expires_in"] for record in records
                    if record.get("state") == RUNNING]
        self.next_expiry = min(expiries) if expiries else None
        return died

    def lacks(self, channel: str) -> bool:
        """Known to have no running worker listening on ``channel``."""
        return self.running is not None and channel not in self.consumed

    def forget(self) -> None:
        """Nothing read for too long: what was known is no longer."""
        self.running = None
        self.consumed = set()
        self.held = set()
        self.next_expiry = None


class ServerLiveness:
    """The heartbeat side of the interface servers of this process on one
    backend (one per layer bridge); see the module's docstring."""

    def __init__(self, bridge: LayerBridge):
        self.bridge = bridge
        self.client = bridge.client
        self.backend = backend = bridge.backend
        self.clock = bridge.clock
        self.enabled = backend.keeps_heartbeats
        self.record = ProcessRecord(INTERFACE, backend)
        self.view = WorkerView()
        self.servers: list[ChannelServer] = []
        self.watched: dict[str, Watched] = {}
        # Reply channels whose clients were answered while their message
        # may still wait in a channel: name -> when.
        self.cancelled: dict[str, float] = {}
        self.missing: set[str] = set()
        self.counts = {"no_worker": 0, "worker_lost": 0}
        self.stopped = False
        self._call: Any = None
        self._last_read = self.clock.seconds()
        self._writing = False
        self._write_waiters: list[Deferred] = []
        self._failing = False
        self._read_failing = False

    # The servers and their clients.

    def needed(self) -> set[str]:
        return {channel for server in self.servers for channel in server.needed_channels}

    def refusal(self, channel: str) -> str | None:
        """Why a message for ``channel`` should not be sent, if it should not."""
        if channel in self.missing:
            self.counts["no_worker"] += 1
            return NO_WORKER
        return None

    def watch(self, reply_channel: str, client: Watched) -> None:
        self.watched[reply_channel] = client

    def unwatch(self, reply_channel: str) -> None:
        self.watched.pop(reply_channel, None)

    def cancel(self, reply_channel: str) -> None:
        """Its client was answered here while its message may still wait
        in a channel: workers that read this process's record skip it."""
        if self.enabled:
            self.cancelled[reply_channel] = self.clock.seconds()
            self.publish()

    # Reading and writing.

    def start(self) -> None:
        if self.enabled:
            self._tick()

    def stop(self) -> Deferred:
        """Write this process's record as stopped; fires once written (or
        failed)."""
        self.stopped = True
        if self._call is not None and self._call.active():
            self._call.cancel()
        if not self.enabled:
            return succeed(None)
        return self._write(STOPPED)

    def _tick(self) -> None:
        self._call = None
        self.publish()
        self.client.heartbeats(WORKER).addCallbacks(self._read, self._read_failed).addErrback(
            self._crashed).addBoth(self._next)

    def _next(self, _: Any) -> None:
        if not self.stopped:
            interval = self.backend.heartbeat_interval
            delay = min(MISSING_POLL, interval) if self.missing else interval
            if self.view.next_expiry is not None:
                delay = min(delay, max(self.view.next_expiry, 0) + EXPIRY_MARGIN)
            self._call = self.clock.callLater(delay, self._tick)

    def _read(self, heartbeats: Heartbeats) -> None:
        self._last_read = self.clock.seconds()
        self._read_failing = False
        for record in self.view.update(heartbeats):
            self._worker_died(record)
        for channel in sorted(self.needed()):
            lacking = self.view.lacks(channel)
            if lacking and channel not in self.missing:
                self.missing.add(channel)
                logger.error("No worker is running for %s (no live worker's heartbeat lists "
                             "it): answering 503 until one does", channel)
                self._give_up([(reply, channel, client) for reply, client in self.watched.items()
                               if client.waiting_on() == channel], NO_WORKER)
            elif not lacking and channel in self.missing:
                self.missing.discard(channel)
                logger.warning("A worker is running for %s again", channel)

    def _read_failed(self, failure: Failure) -> None:
        # An outage is the backend's to log; anything else once.
        if not failure.check(ChannelBackendUnavailable) and not self._read_failing:
            self._read_failing = True
            self._crashed(failure)
        if self.clock.seconds() - self._last_read > self.backend.heartbeat_ttl:
            # Stale: serve as if workers ran (sends fail with 503 if the
            # backend is down anyway).
            self.view.forget()
            self.missing.clear()

    def _crashed(self, failure: Failure) -> None:
        logger.error("Reading the workers' heartbeats failed",
                     exc_info=(failure.type, failure.value, failure.getTracebackObject()))

    def _worker_died(self, record: dict[str, Any]) -> None:
        lost = [(pair[1], pair[0], self.watched[pair[1]]) for pair in record.get("in_hand", ())
                if len(pair) == 2 and pair[1] in self.watched and pair[1] not in self.view.held]
        logger.warning("Worker %s (host %s, pid %s) stopped without a word: its heartbeat "
                       "expired. It held %d message(s) of this server's clients; they are "
                       "answered here.", record.get("id"), record.get("host"),
                       record.get("pid"), len(lost))
        self._give_up(lost, WORKER_LOST)

    def _give_up(self, lost: list[tuple[str, str, Watched]], reason: str) -> None:
        """Answer these clients for the workers that will not, once the
        reply channels of those still waiting for a first answer are in
        this process's record."""
        if not lost:
            return
        self.counts["no_worker" if reason == NO_WORKER else "worker_lost"] += len(lost)
        now = self.clock.seconds()
        for reply, channel, client in lost:
            if client.waiting_on() == channel:
                self.cancelled[reply] = now

        def answer(_: Any) -> None:
            for reply, channel, client in lost:
                if self.watched.get(reply) is client:
                    client.worker_lost(channel, reason)

        self.publish().addCallback(answer)

    def publish(self) -> Deferred:
        """Write this process's record; fires (never fails) once a write
        begun after this call has ended. One write at a time, so that an
        older record never lands after a newer one."""
        done = Deferred()
        if self.enabled and not self.stopped:
            self._write_waiters.append(done)
            if not self._writing:
                self._write()
        else:
            done.callback(None)
        return done

    def _write(self, state: str = RUNNING) -> Deferred:
        waiters, self._write_waiters = self._write_waiters, []
        self._writing = True
        data = encode(self._current_record(state))
        written = self.client.set_heartbeat(INTERFACE, self.record.id, data,
                                            self.backend.heartbeat_ttl)
        return written.addCallbacks(self._written, self._write_failed,
                                    callbackArgs=(waiters,), errbackArgs=(waiters,))

    def _written(self, _: Any, waiters: list[Deferred]) -> None:
        self._failing = False
        self._writing = False
        for waiter in waiters:
            waiter.callback(None)
        if self._write_waiters and not self.stopped:
            self._write()

    def _write_failed(self, failure: Failure, waiters: list[Deferred]) -> None:
        if not failure.check(ChannelBackendUnavailable) and not self._failing:
            logger.error("Could not write this server's heartbeat",
                         exc_info=(failure.type, failure.value, failure.getTracebackObject()))
        self._written(None, waiters)
        self._failing = True

    def _current_record(self, state: str) -> dict[str, Any]:
        expired = self.clock.seconds() - self.backend.expiry
        cancelled = [name for name, when in self.cancelled.items() if when > expired]
        self.cancelled = {name: self.cancelled[name] for name in cancelled[-MAX_CANCELLED:]}
        return self.record.beat(
            state,
            connections={
                "http": sum(len(server.http_connections) for server in self.servers),
                "websocket": sum(len(server.websockets) for server in self.servers),
            },
            counts=dict(self.counts),
            cancelled=list(self.cancelled),
            reply_token=self.bridge.token,
        )


# One per layer bridge, that is per backend per process, like the bridge.
_livenesses: dict[int, tuple[LayerBridge, ServerLiveness]] = {}


def acquire_liveness(bridge: LayerBridge, server: ChannelServer) -> ServerLiveness:
    """The running liveness of ``bridge``, with ``server`` among its servers."""
    known = _livenesses.get(id(bridge))
    if known is None or known[0] is not bridge:
        liveness = ServerLiveness(bridge)
        _livenesses[id(bridge)] = (bridge, liveness)
        liveness.servers.append(server)
        liveness.start()
        return liveness
    known[1].servers.append(server)
    return known[1]


def release_liveness(liveness: ServerLiveness, server: ChannelServer) -> Deferred:
    """Take ``server`` out; the last one out stops it. Fires once done."""
    liveness.servers.remove(server)
    if liveness.servers:
        return succeed(None)
    for key, (_, known) in list(_livenesses.items()):
        if known is liveness:
            del _livenesses[key]
    return liveness.stop()
