"""A channel backend inside one process.

For ``runserver`` and tests: the interface server and the worker threads of
one process share it, so every operation holds one lock, and a blocking
receive waits on a condition instead of polling.
"""

from __future__ import annotations

import math
import os
import secrets
import threading
import time
from collections import deque

from channels import process
from channels.backends.base import BaseChannelBackend
from channels.backends.encoding import decode
from channels.backends.presence import (
    NO_CHANGE,
    NO_PROCESS,
    Joined,
    Member,
    PresenceChange,
    change_from,
)
from channels.backends.status import ChannelStatus, ShardStatus
from channels.exceptions import ChannelFull
from channels.heartbeats import INTERFACE
from channels.names import is_normal_channel, is_wildcard


class InMemoryChannelBackend(BaseChannelBackend):
    local_only = True
    keeps_heartbeats = True

    def __init__(self, **options):
        super().__init__(**options)
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._channels: dict[str, deque[tuple[float, bytes]]] = {}
        # group: {channel: (expires, process bound to or None)}; expires
        # is inf for a member bound to its process without an expiry.
        self._groups: dict[str, dict[str, tuple[float, str | None]]] = {}
        # Bound channels' groups, and closed sockets' channels kept out of
        # groups (until when): see channels.backends.membership.
        self._bound: dict[str, set[str]] = {}
        self._left: dict[str, float] = {}
        self._locks: dict[str, tuple[str, float]] = {}
        self._paused: set[str] = set()
        self._next_sweep = 0.0
        # kind: {id: (expires, record)}, and when they began to be kept.
        self._beats: dict[str, dict[str, tuple[float, bytes]]] = {}
        self._beats_since = time.monotonic()
        # name: [version, {channel: (process, key, expires)}, {key: [count, meta]}];
        # versions from one counter, so that they grow also across a
        # presence that emptied and began again.
        self._presences: dict[str, list] = {}
        self._presence_version = int(time.time() * 1000) * 1000
        self._sweep_due = 0.0

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
        for channel in [c for c, until in self._left.items() if until <= now]:
            del self._left[channel]
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
        """``(channel, data, age)`` of the next message, or Nones. A
        message's age is read from its expiry, EXPIRY after its send."""
        now = time.monotonic()
        # Start at a random channel, so a busy channel listed first cannot
        # starve the others a worker listens on.
        start = process.random().randrange(len(channels)) if channels else 0
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
                    expires, data = queue.popleft()
                    if not queue:
                        del self._channels[channel]
                    return channel, data, now - expires + self.expiry
        return None, None, None

    def queue_depths(self, channels):
        now = time.monotonic()
        with self._lock:
            return {channel: self._live_count(self._channels.get(channel, ()), now)
                    for channel in channels}

    @staticmethod
    def _live_count(queue, now: float) -> int:
        """Messages of ``queue`` not expired (the expired go when read)."""
        return sum(1 for expires, _ in queue if expires > now)

    def _receive_many(self, channels):
        with self._lock:
            return self._pop(channels)[:2]

    def _receive_many_blocking(self, channels, timeout):
        return self._pop_blocking(channels, timeout)[:2]

    def _pop_blocking(self, channels, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            while True:
                taken = self._pop(channels)
                if taken[0] is not None:
                    return taken
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return taken
                self._arrived.wait(remaining)

    def _receive_batch_aged(self, channels, limit, timeout):
        batch = []
        taken = self._pop_blocking(channels, timeout)
        while taken[0] is not None:
            batch.append(taken)
            if len(batch) >= limit:
                break
            with self._lock:
                taken = self._pop(channels)
        return batch

    def _alive(self, process, now):
        record = self._beats.get(INTERFACE, {}).get(process)
        return record is not None and record[0] > now

    def _live_members(self, group, now):
        members = self._groups.get(group, {})
        for channel in [c for c, (expires, owner) in members.items()
                        if expires <= now or (owner and not self._alive(owner, now))]:
            self._unbind(group, channel, members.pop(channel)[1])
        if not members:
            self._groups.pop(group, None)
        return members

    def _unbind(self, group, channel, process):
        if process is not None:
            groups = self._bound.get(channel, set())
            groups.discard(group)
            if not groups:
                self._bound.pop(channel, None)

    def _group_add(self, group, channel, expiry, process):
        with self._lock:
            now = time.monotonic()
            if process is not None and not self._alive(process, now):
                process = None  # no heartbeat to follow: the old rule
                expiry = self.group_expiry if expiry is None else expiry
            elif channel in self._left:
                return  # its socket closed
            expires = math.inf if expiry is None else now + expiry
            self._groups.setdefault(group, {})[channel] = (expires, process)
            if process is not None:
                self._bound.setdefault(channel, set()).add(group)

    def _group_discard(self, group, channel):
        with self._lock:
            members = self._groups.get(group)
            if members is not None and channel in members:
                self._unbind(group, channel, members.pop(channel)[1])
                if not members:
                    del self._groups[group]

    def _discard_from_groups(self, process, channels):
        with self._lock:
            until = time.monotonic() + 2 * self.expiry
            for channel in channels:
                self._left[channel] = until
                for group in self._bound.pop(channel, ()):
                    members = self._groups.get(group, {})
                    members.pop(channel, None)
                    if not members:
                        self._groups.pop(group, None)

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

    # Presences (channels.backends.presence).

    def _presence(self, name: str) -> list:
        presence = self._presences.get(name)
        if presence is None:
            presence = self._presences[name] = [0, {}, {}]
        return presence

    def _bump(self, presence: list) -> int:
        self._presence_version += 1
        presence[0] = self._presence_version
        return presence[0]

    def _drop(self, name: str, channel: str, dropped: dict) -> int:
        """Remove a connection, noting in ``dropped`` its key's count and
        meta after it; returns the presence's version after it."""
        presence = self._presences[name]
        _, connections, keys = presence
        _, key, _ = connections.pop(channel)
        members = self._groups.get(name, {})
        members.pop(channel, None)
        if not members:
            self._groups.pop(name, None)
        entry = keys[key]
        entry[0] -= 1
        dropped[key] = tuple(entry)
        if not entry[0]:
            del keys[key]
        if not connections:
            del self._presences[name]
        return self._bump(presence)

    def _dropped(self, version: int, dropped: dict) -> PresenceChange:
        return change_from(version, [("u" if count else "l", key, count, decode(meta))
                                     for key, (count, meta) in dropped.items()])

    def _presence_join(self, name, channel, process, key, meta, expiry, with_state):
        with self._lock:
            presence = self._presence(name)
            old = presence[1].get(channel)
            expires = time.monotonic() + expiry
            group = self._groups.setdefault(name, {})
            if old is not None and old[1] == key:  # a renewal
                presence[1][channel] = (process, key, expires)
                group[channel] = (expires, None)

                entry = presence[2][key]
                if entry[1] == meta:
                    return Joined(False, NO_CHANGE, 0, {})
                entry[1] = meta
                return Joined(False, change_from(self._bump(presence), [("u", key, entry[0],
                                                                decode(meta))]), 0, {})
            dropped: dict = {}
            if old is not None:  # the same channel under another key
                self._drop(name, channel, dropped)
                presence = self._presence(name)
                group = self._groups.setdefault(name, {})
            group[channel] = (expires, None)
            presence[1][channel] = (process, key, expires)
            entry = presence[2].setdefault(key, [0, meta])
            entry[0] += 1
            entry[1] = meta
            change = self._dropped(self._bump(presence), dropped)
            (change.joins if entry[0] == 1 else change.updates)[key] = Member(decode(meta),
                                                                             entry[0])
            return Joined(True, change, presence[0],
                          self._members(presence) if with_state else {})

    def _presence_leave(self, name, channel):
        with self._lock:
            presence = self._presences.get(name)
            if presence is None or channel not in presence[1]:
                return NO_CHANGE
            dropped: dict = {}
            return self._dropped(self._drop(name, channel, dropped), dropped)

    @staticmethod
    def _members(presence: list) -> dict[str, Member]:
        return {key: Member(decode(meta), count) for key, (count, meta) in presence[2].items()}

    def _presence_members(self, name):
        with self._lock:
            presence = self._presences.get(name)
            return (0, {}) if presence is None else (presence[0], self._members(presence))

    def _presence_sweep(self, kind):
        with self._lock:
            now = time.monotonic()
            if now < self._sweep_due:
                return [], self._sweep_due - now
            beats = self._beats.get(kind, {})
            complete = now - self._beats_since >= self.heartbeat_ttl
            due = now + self.heartbeat_interval
            if not complete:
                due = min(due, self._beats_since + self.heartbeat_ttl)
            for expires, _ in beats.values():
                if expires > now:
                    due = min(due, expires)
            changes = []
            for name in list(self._presences):
                dropped: dict = {}
                version = 0
                for channel, (process, _, expires) in list(self._presences[name][1].items()):
                    gone = expires <= now or (complete and process != NO_PROCESS and (
                        process not in beats or beats[process][0] <= now))
                    if gone:
                        version = self._drop(name, channel, dropped)
                    else:
                        due = min(due, expires)
                if dropped:
                    changes.append((name, self._dropped(version, dropped)))
            self._sweep_due = due
            return changes, max(due - now, 0.0)

    def _status(self, channels):
        """One "shard", this process: nothing to measure but what it holds."""
        with self._lock:
            now = time.monotonic()
            depths = {name: self._live_count(queue, now)
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
            self._presences.clear()
            self._sweep_due = 0.0
            self._channels.clear()
            self._groups.clear()
            self._bound.clear()
            self._left.clear()
            self._locks.clear()
            self._paused.clear()
            self._beats.clear()
            self._beats_since = time.monotonic()
