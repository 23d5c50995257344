"""``websocket.keepalive`` for every open socket, every half channel EXPIRY.

Consumers re-add sockets to their groups on keepalive before membership
expires. Sending them all at once would put a burst of N messages on the
layer every interval, so sockets are dealt round-robin into buckets, one
bucket per tick, and each tick sends one bucket's keepalives: the load is
flat and a tick costs only its bucket.
"""

from __future__ import annotations

import math
from typing import Any

from twisted.internet.task import LoopingCall

TICK = 1.0


class KeepaliveScheduler:
    def __init__(self, reactor: Any, interval: float):
        self.tick = min(TICK, interval)
        self.buckets: list[set] = [set() for _ in range(max(1, math.ceil(interval / self.tick)))]
        self.next_bucket = 0  # where the next socket is dealt
        self.current = 0  # the bucket the next tick sends
        self.where: dict[Any, int] = {}
        self.loop = LoopingCall(self.send_bucket)
        self.loop.clock = reactor

    def start(self) -> None:
        self.loop.start(self.tick, now=False)

    def stop(self) -> None:
        if self.loop.running:
            self.loop.stop()

    def add(self, connection: Any) -> None:
        index = self.next_bucket
        self.next_bucket = (index + 1) % len(self.buckets)
        self.buckets[index].add(connection)
        self.where[connection] = index

    def discard(self, connection: Any) -> None:
        index = self.where.pop(connection, None)
        if index is not None:
            self.buckets[index].discard(connection)

    def send_bucket(self) -> None:
        bucket = self.buckets[self.current]
        self.current = (self.current + 1) % len(self.buckets)
        for connection in list(bucket):
            connection.keepalive()
