"""A throwaway Redis Sentinel deployment for tests: a master, one replica
and three sentinels, real ``redis-server`` processes on free loopback ports
(``tests/support/redis_servers.py``), with a short ``down-after-milliseconds``
so that a failover takes seconds.

API:

``SentinelGroup(password="pw", sentinel_password="spw", down_after_ms=1000)``
    ``.start()`` starts the master, the replica (synchronised) and the
    sentinels, and returns once every sentinel sees the replica and the
    other two (so that a failover can be voted). ``.url(db)`` is its
    ``HOSTS`` entry (``sentinel://...``); ``.master`` the ``RedisServer``
    that is master now (per the sentinels); ``.client(server)`` a redis-py
    client of a data server; ``.kill_master()`` kills it (SIGKILL) and
    returns it; ``.wait_for_new_master(old, timeout)`` waits for the
    sentinels' ``+switch-master`` away from ``old`` and returns the
    ``time.monotonic()`` at which the first sentinel announced it;
    ``.cleanup()`` stops everything and deletes the directories.
"""

from __future__ import annotations

import threading
import time

import redis

from tests.support.redis_servers import RedisServer

SERVICE = "mymaster"


class SentinelGroup:
    def __init__(self, password: str | None = "pw", sentinel_password: str | None = "spw",
                 down_after_ms: int = 1000, failover_timeout_ms: int = 3000) -> None:
        self.password = password
        self.sentinel_password = sentinel_password
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms
        auth = ("--requirepass", password, "--masterauth", password) if password else ()
        # A replica synchronises at once, not after the default 5 s wait
        # for others to share the transfer.
        self.servers = [RedisServer("--repl-diskless-sync-delay", "0", *auth)]
        self.sentinels: list[RedisServer] = []
        self._switches: list[tuple[float, str]] = []
        self._switched = threading.Condition()
        self._watching = threading.Event()

    def start(self) -> SentinelGroup:
        master = self.servers[0].start()
        replica = RedisServer(*self.servers[0].options, "--replicaof", master.host,
                              str(master.port)).start()
        self.servers.append(replica)
        self._wait(lambda: self.client(replica).info("replication")
                   .get("master_link_status") == "up", "the replica to synchronise")
        config = [
            f"sentinel monitor {SERVICE} {master.host} {master.port} 2",
            f"sentinel down-after-milliseconds {SERVICE} {self.down_after_ms}",
            f"sentinel failover-timeout {SERVICE} {self.failover_timeout_ms}",
        ]
        if self.password:
            config.append(f"sentinel auth-pass {SERVICE} {self.password}")
        if self.sentinel_password:
            config.append(f"requirepass {self.sentinel_password}")
        for _ in range(3):
            sentinel = RedisServer("--sentinel", config="\n".join(config) + "\n")
            self.sentinels.append(sentinel.start())

        def ready():
            for sentinel in self.sentinels:
                state = self.sentinel_client(sentinel).sentinel_master(SERVICE)
                if state["num-slaves"] < 1 or state["num-other-sentinels"] < 2:
                    return False
            return True

        self._wait(ready, "the sentinels to see the replica and each other")
        threading.Thread(target=self._watch, daemon=True).start()
        self._watching.wait(10)
        return self

    @staticmethod
    def _wait(condition, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"Timed out waiting for {what}")
            time.sleep(0.05)

    def url(self, db: int = 0) -> str:
        hosts = ",".join(f"{s.host}:{s.port}" for s in self.sentinels)
        auth = f":{self.password}@" if self.password else ""
        query = f"?sentinel_password={self.sentinel_password}" if self.sentinel_password else ""
        return f"sentinel://{auth}{hosts}/{SERVICE}/{db}{query}"

    def sentinel_client(self, sentinel: RedisServer) -> redis.Redis:
        return sentinel.client(password=self.sentinel_password, socket_timeout=5)

    def client(self, server: RedisServer, db: int = 0) -> redis.Redis:
        return server.client(password=self.password, socket_timeout=5, db=db)

    def master_address(self) -> tuple[str, int]:
        """Where the first sentinel that answers says the master is."""
        for sentinel in self.sentinels:
            if sentinel.running:
                host, port = self.sentinel_client(sentinel).sentinel_get_master_addr_by_name(
                    SERVICE)
                return host.decode() if isinstance(host, bytes) else host, int(port)
        raise RuntimeError("no sentinel is running")

    @property
    def master(self) -> RedisServer:
        _, port = self.master_address()
        return next(server for server in self.servers if server.port == port)

    def kill_master(self) -> RedisServer:
        master = self.master
        master.stop()
        return master

    def _watch(self) -> None:
        """Record every sentinel's ``+switch-master`` announcements."""
        pubsubs = []
        for sentinel in self.sentinels:
            pubsub = self.sentinel_client(sentinel).pubsub(ignore_subscribe_messages=True)
            pubsub.subscribe("+switch-master")
            pubsubs.append(pubsub)
        for pubsub in pubsubs:  # the subscriptions are in place
            pubsub.get_message(timeout=5)
        self._watching.set()
        while any(sentinel.running for sentinel in self.sentinels):
            for pubsub in pubsubs:
                try:
                    message = pubsub.get_message(timeout=0.01)
                except (redis.ConnectionError, OSError):
                    return
                if message is not None:
                    with self._switched:
                        self._switches.append((time.monotonic(), message["data"].decode()))
                        self._switched.notify_all()

    def wait_for_new_master(self, old: RedisServer, timeout: float = 30) -> float:
        """When the first sentinel announced a master other than ``old``."""
        deadline = time.monotonic() + timeout
        with self._switched:
            while True:
                for moment, data in self._switches:
                    # "<name> <old ip> <old port> <new ip> <new port>"
                    if data.split()[-1] != str(old.port):
                        return moment
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"No failover away from {old} in {timeout} s")
                self._switched.wait(remaining)

    def cleanup(self) -> None:
        for server in [*self.sentinels, *self.servers]:
            server.cleanup()
