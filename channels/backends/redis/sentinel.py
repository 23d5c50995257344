"""A Sentinel-managed shard: finding its master, and hearing when the
sentinels replace it.

The blocking client's connections ask the sentinels where the master is
(redis-py's ``Sentinel``) each time they connect, and connect again after
a connection error or a ``READONLY`` answer, the sign of a master demoted by
a failover (redis-py's ``SentinelManagedConnection`` turns that answer into
a connection error). So the shard's usual outage handling (``shard.py``)
covers a failover: while the sentinels name no master, or one that does not
answer, the shard is down and fails fast; once they have promoted a
replica, the next try connects to it and the shard is back.

Each process also listens to the sentinels' announcements, as Jedis and
Lettuce do, in one thread per sentinel, since a master replaced while it is
still up (``SENTINEL FAILOVER``, a partition) keeps taking commands until
the sentinels make it a replica, ten seconds later: what is sent to it
meanwhile is lost, and what is taken from it may still be on the promoted
replica, to be delivered again. So:

- from ``+try-failover`` (a failover starts; the sentinel promotes the
  replica some 100 ms later) until the failover ends or is given up, the
  shard is down: no new command goes to the old master;
- on ``+switch-master``, new connections go to the announced master for a
  while (a sentinel may not have heard of it yet), and a shard that is
  down tries again at once.

Either way, both clients' connections to the old master close as each
finishes its command (a blocking pop within its poll timeout). The
interface server's client (``reactor_sentinel.py``) asks the sentinels
itself, without blocking the reactor, and hears the announcements from
here.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

import redis
from redis.sentinel import MasterNotFoundError, Sentinel, SentinelManagedConnection

from channels.backends.redis.hosts import SentinelService

logger = logging.getLogger("channels.backends.redis")

# Connections to the sentinels give up after this (connecting, or waiting
# for an answer) and the next sentinel is asked: a sentinel answers at once
# or not at all.
SENTINEL_TIMEOUT = 1.0
# New connections go to an announced master for this long (the sentinels
# that did not make the failover hear of it within a few seconds), and a
# failover that neither ends nor is given up stops holding the shard down.
TRUST_ANNOUNCEMENT = 10.0
# A listener that lost its sentinel subscribes again after this.
LISTEN_RETRY = 1.0

Address = tuple[str, int]


def sentinel_options(service: SentinelService, connect_timeout: float) -> dict[str, Any]:
    """redis-py ``sentinel_kwargs`` for connections to the sentinels."""
    return {"socket_connect_timeout": connect_timeout, "socket_timeout": SENTINEL_TIMEOUT,
            **service.options}


class MasterConnection(SentinelManagedConnection):
    """A connection to the master the sentinels name.

    redis-py connects on a first send without asking the sentinels (only a
    pool's checkout calls ``connect()``, which asks), and the shard's
    connections are not a pool's: so a send connects here first. A
    connection to a master that the sentinels have since replaced fails its
    next command before sending it; the shard's retry connects again."""

    moved = False

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if self._sock is None:
            self.moved = False
            self.connect()
        elif self.moved:
            self.moved = False
            self.disconnect()
            raise redis.ConnectionError("The sentinels named a new master")
        super().send_packed_command(command, check_health)

    def connect_to(self, address: Address) -> None:
        super().connect_to(address)
        self.moved = False
        self.connection_pool.connected(self, address)

    def leave(self, master: Address | None) -> None:
        """Fail the next command if connected to another than ``master``
        (None: to any)."""
        if self._sock is not None and (self.host, self.port) != master:
            self.moved = True


class Sentinels:
    """A shard's sentinels: what a ``SentinelManagedConnection`` asks where
    the master is (the part of redis-py's ``SentinelConnectionPool`` it
    uses, with no pool: the shard keeps its own connections), and the
    listeners of their announcements.

    ``on_new_master(address, previous)`` hears of a master that a
    connection reached, or the sentinels announced, other than the one
    before. ``on_switch(address)`` is called by the listeners' threads when
    a new master is announced, and with None when a failover starts, as
    are the functions given to ``subscribe``."""

    is_master = True
    check_connection = False

    def __init__(self, service: SentinelService, connect_timeout: float,
                 on_new_master: Callable[[Address, Address], None],
                 on_switch: Callable[[Address | None], None]) -> None:
        self.service_name = service.service_name
        # redis-py's clients of the sentinels.
        self.manager = Sentinel(service.sentinels,
                                sentinel_kwargs=sentinel_options(service, connect_timeout))
        self.on_new_master = on_new_master
        self.on_switch = on_switch
        self.announced: Address | None = None
        self._announced_at = 0.0
        # The master last reached or announced, and the failovers of it under
        # way: when each sentinel that tries one began (+try-failover).
        self.master: Address | None = None
        self._failovers: dict[int, float] = {}
        self._connections: weakref.WeakSet[MasterConnection] = weakref.WeakSet()
        self._subscribers: list[weakref.WeakMethod] = []
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._listening = False

    def announced_master(self) -> Address | None:
        """The master announced in the last few seconds, if one was; raises
        ``MasterNotFoundError`` while the sentinels replace the master."""
        now = time.monotonic()
        if any(now - began < TRUST_ANNOUNCEMENT for began in self._failovers.values()):
            raise MasterNotFoundError(
                "The sentinels are replacing master {}:{}".format(*self.master))
        if self.announced and now - self._announced_at < TRUST_ANNOUNCEMENT:
            return self.announced
        return None

    def get_master_address(self) -> Address:
        """The announced master (none while a failover runs), else the
        master that the first sentinel to answer sees up, by redis-py's
        rule (``Sentinel.check_master_state``); else ``MasterNotFoundError``
        (a ``redis.ConnectionError``) with what each sentinel said, in a
        line (``Sentinel.discover_master`` says the same with the whole
        client's repr for each)."""
        self.listen()
        announced = self.announced_master()
        if announced is not None:
            return announced
        errors = []
        for client in self.manager.sentinels:
            where = "{host}:{port}".format_map(client.connection_pool.connection_kwargs)
            try:
                masters = client.sentinel_masters()
            except (redis.ConnectionError, redis.ResponseError, redis.TimeoutError) as exc:
                errors.append(f"{where}: {exc or type(exc).__name__}")
                continue
            state = masters.get(self.service_name)
            if state and self.manager.check_master_state(state, self.service_name):
                return state["ip"], state["port"]
            errors.append(f"{where}: " + (f"master {state['ip']}:{state['port']} is down"
                                          if state else "no such master"))
        raise MasterNotFoundError(f"No master found for {self.service_name!r}: "
                                  + "; ".join(errors))

    def connected(self, connection: MasterConnection, address: Address) -> None:
        with self._lock:
            self._connections.add(connection)
        self.reached(address)

    def reached(self, address: Address) -> None:
        """A connection (of either client) reached ``address``, a master."""
        with self._lock:
            previous, self.master = self.master, address
        if previous not in (None, address):
            self.on_new_master(address, previous)

    def subscribe(self, heard: Callable[[Address | None], None]) -> None:
        """Call the bound method ``heard(address)`` (from a listener's
        thread) when a new master is announced, or ``heard(None)`` when a
        failover starts, while its object lives."""
        with self._lock:
            self._subscribers = [subscriber for subscriber in self._subscribers
                                 if subscriber() is not None]
            self._subscribers.append(weakref.WeakMethod(heard))

    # The listeners.

    def listen(self) -> None:
        """Start listening to the announcements (once: a forked child has
        a new shard, and so its own listeners)."""
        if self._listening:
            return
        with self._lock:
            if self._listening or self._stopped.is_set():
                return
            self._listening = True
        for client in self.manager.sentinels:
            threading.Thread(target=self._listen, args=(client,), daemon=True,
                             name=f"channels-redis-sentinel-{self.service_name}").start()

    def _listen(self, client: redis.Redis) -> None:
        while not self._stopped.is_set():
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe("+switch-master", "+try-failover")
                pubsub.psubscribe("-failover-abort-*")
                while not self._stopped.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is not None:
                        self._heard(id(client), message["channel"].decode(),
                                    message["data"].decode().split())
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError,
                    OSError) as exc:
                logger.debug("Listening to sentinel %s failed: %s", client, exc)
            finally:
                pubsub.close()
            self._stopped.wait(LISTEN_RETRY)

    def _heard(self, sentinel: int, channel: str, words: list[str]) -> None:
        """From ``sentinel``: ``+switch-master <name> <old ip> <old port>
        <new ip> <new port>``, ``+try-failover master <name> <ip> <port>``,
        and the same for ``-failover-abort-...``. A try or an abort is of
        the sentinel that sends it (several may try; one wins), and counts
        only for the master in use (a late one may be of an old master)."""
        if channel == "+switch-master" and len(words) == 5 and words[0] == self.service_name:
            address = (words[3], int(words[4]))
            with self._lock:
                if address == self.announced and not self._failovers:
                    return  # another sentinel's announcement of the same
                self.announced, self._announced_at = address, time.monotonic()
                self._failovers.clear()
            self.reached(address)
        elif len(words) == 4 and words[:2] == ["master", self.service_name]:
            with self._lock:
                if self.master not in (None, (words[2], int(words[3]))):
                    return
                if channel != "+try-failover":  # given up
                    self._failovers.pop(sentinel, None)
                    return
                self.master = (words[2], int(words[3]))  # if it was None
                self._failovers[sentinel] = time.monotonic()
            address = None
        else:
            return
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            connection.leave(address)
        self.on_switch(address)
        for subscriber in list(self._subscribers):
            heard = subscriber()
            if heard is not None:
                heard(address)

    def close(self) -> None:
        self._stopped.set()
        self.manager.close()
