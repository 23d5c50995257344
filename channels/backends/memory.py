"""A channel backend inside one process.

For ``runserver`` and tests: the interface server and the worker threads of
one process share it, so every operation holds one lock, and a blocking
receive waits on a condition instead of polling.
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections import deque

from channels.backends.base import BaseChannelBackend
from channels.backends.status import ChannelStatus, ShardStatus
from channels.exceptions import ChannelFull
from channels.names import is_normal_channel, is_wildcard


class InMemoryChannelBackend(BaseChannelBackend):
    local_only = True
    keeps_heartbeats = True

    def __init__(self, **options):
        super().__init__(**options)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._channels: dict[str, deque[tuple[float, bytes]]] = {}
        self._groups: dict[str, dict[str, float]] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._paused: set[str] = set()
        self._next_sweep = 0.0
        # kind: {id: (expires, record)}, and when they began to be kept.
        self._beats: dict[str, dict[str, tuple[float, bytes]]] = {}
        self._beats_since = time.monotonic()

    def _push(self, channel: str, data: bytes, now: float, head: bool = False) -> bool:
        if not head and channel in self._paused:
            return False
        queue = self._channels.get(channel)
        if queue is None:
            queue = self._channels[channel] = deque()
        else:
            self._drop_expired(queue, now)
            if not head and len(queue) >= self.capacity_for(channel):
                # A requeued message gets a fresh expiry at the head and can
                # hide expired ones behind it; they must not count as full.
                live = [item for item in queue if item[0] > now]
                if len(live) >= self.capacity_for(channel):
                    return False
                queue.clear()
                queue.extend(live)
        if head:
            queue.appendleft((now + self.expiry, data))
        else:
            queue.append((now + self.expiry, data))
        return True

    @staticmethod
    def _drop_expired(queue: deque, now: float) -> None:
        while queue and queue[0][0] <= now:
            queue.popleft()

    def _sweep(self, now: float) -> None:
        """Forget channels that nobody reads once their messages expire, so
        abandoned response channels do not hold memory; and groups whose
        members have all expired, and expired locks, which nobody may ask
        about again (the marks of closed connections, channels.sessions)."""
        if now < self._next_sweep:
            return
        self._next_sweep = now + self.expiry / 2
        for name in list(self._channels):
            queue = self._channels[name]
            self._drop_expired(queue, now)
            if not queue:
                del self._channels[name]
        for group in list(self._groups):
            self._live_members(group, now)
        for name in [name for name, (_, expires) in self._locks.items() if expires <= now]:
            del self._locks[name]

    def _send(self, channel, data):
        with self._lock:
            now = time.monotonic()
            self._sweep(now)
            if not self._push(channel, data, now):
                raise ChannelFull(f"Channel {channel!r} is full")
            self._arrived.notify_all()

    def _requeue(self, channel, data):
        with self._lock:
            self._push(channel, data, time.monotonic(), head=True)
            self._arrived.notify_all()

    def _pop(self, channels):
        now = time.monotonic()
        # Start at a random channel, so a busy channel listed first cannot
        # starve the others a worker listens on.
        start = random.randrange(len(channels)) if channels else 0
        for name in channels[start:] + channels[:start]:
            if is_wildcard(name):
                candidates = [c for c in self._channels if c.startswith(name)]
            else:
                candidates = (name,)
            for channel in candidates:
                queue = self._channels.get(channel)
                if not queue:
                    continue
                self._drop_expired(queue, now)
                if queue:
                    data = queue.popleft()[1]
                    if not queue:
                        del self._channels[channel]
                    return channel, data
        return None, None

    def _receive_many(self, channels):
        with self._lock:
            return self._pop(channels)

    def _receive_many_blocking(self, channels, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                channel, data = self._pop(channels)
                if channel is not None:
                    return channel, data
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None, None
                self._arrived.wait(remaining)

    def _live_members(self, group, now):
        members = self._groups.get(group, {})
        for channel in [c for c, expires in members.items() if expires <= now]:
            del members[channel]
        if not members:
            self._groups.pop(group, None)
        return members

    def _group_add(self, group, channel, expiry):
        with self._lock:
            self._groups.setdefault(group, {})[channel] = time.monotonic() + expiry

    def _group_discard(self, group, channel):
        with self._lock:
            members = self._groups.get(group)
            if members is not None:
                members.pop(channel, None)
                if not members:
                    del self._groups[group]

    def _group_channels(self, group):
        with self._lock:
            return list(self._live_members(group, time.monotonic()))

    def _send_group(self, group, data):
        with self._lock:
            now = time.monotonic()
            for channel in self._live_members(group, now):
                self._push(channel, data, now)
            self._arrived.notify_all()

    def _set_paused(self, channel, paused):
        with self._lock:
            if paused:
                self._paused.add(channel)
            else:
                self._paused.discard(channel)

    def _lock_channel(self, channel, expiry):
        with self._lock:
            now = time.monotonic()
            held = self._locks.get(channel)
            if held is not None and held[1] > now:
                return None
            token = secrets.token_hex(16)
            self._locks[channel] = (token, now + expiry)
            return token

    def _unlock_channel(self, channel, token):
        with self._lock:
            held = self._locks.get(channel)
            if held is None or held[0] != token:
                return False
            del self._locks[channel]
            return True

    def _set_heartbeat(self, kind, id, data, ttl):
        with self._lock:
            self._beats.setdefault(kind, {})[id] = (time.monotonic() + ttl, data)

    def _heartbeats(self, kind):
        with self._lock:
            now = time.monotonic()
            records = self._beats.get(kind, {})
            for id in [id for id, (expires, _) in records.items() if expires <= now]:
                del records[id]
            return ([(data, expires - now) for expires, data in records.values()],
                    now - self._beats_since)

    def _clear_heartbeat(self, kind, id):
        with self._lock:
            self._beats.get(kind, {}).pop(id, None)

    def _status(self, channels):
        """One "shard", this process: nothing to measure but what it holds."""
        with self._lock:
            now = time.monotonic()
            depths = {name: sum(1 for expires, _ in queue if expires > now)
                      for name, queue in self._channels.items()}
            groups = sum(1 for group in list(self._groups) if self._live_members(group, now))
        normal = {name: depth for name, depth in depths.items()
                  if is_normal_channel(name) and depth}
        shard = ShardStatus(f"in-process memory (pid {os.getpid()})", True, groups=groups,
                            replies_waiting=sum(depth for name, depth in depths.items()
                                                if not is_normal_channel(name)))
        return [shard], [ChannelStatus(name, [normal.get(name, 0)], self.capacity_for(name))
                         for name in sorted(channels | set(normal))]

    def flush(self):
        with self._lock:
            self._channels.clear()
            self._groups.clear()
            self._locks.clear()
            self._paused.clear()
            self._beats.clear()
            self._beats_since = time.monotonic()
