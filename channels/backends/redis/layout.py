"""What the Redis backend stores, and under which keys: the rules both of its
clients (the blocking one in ``backend.py``, the reactor one in
``reactor.py``) follow, with no I/O of their own.

Keys, under PREFIX: ``c:<channel>`` a channel's own list (on every shard
for a normal channel), ``i:<wildcard>`` and ``n:<wildcard>`` an inbox and its
per-channel counts, ``g:<group>`` a group (a sorted set scored by expiry)
and ``v:<group>`` its version, with the keys of the members bound to their
interface process (``gm:``, ``gp:``, ``pg:``, ``pc:``, ``pz:``; see
group_scripts.py), ``l:<channel>`` a lock. Every key expires once its
contents have.

Heartbeats (docs/heartbeats.rst) are written to every shard, so that a
reader finds every live process's record on any shard that is up:
``h:<kind>:<id>`` a process's record, ``h:<kind>`` the set of ids of its
kind (what a reader looks up), both expiring with the records, and ``hs``
when the shard began to hold heartbeats (a restarted server holds only the
records written since).

An entry (one stored message) is ``b"<expires ms> <channel> <data>"``, or
for a group message stored once for the members of one inbox
``b"<expires ms> * <member,member,...> <data>"`` (see scripts.py).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from channels.backends.redis.sharding import Placement
from channels.heartbeats import INTERFACE

# What pausing adds to a channel's count (see scripts.PAUSE).
PAUSED = 1 << 40

# A message as the clients handle it: (channel, encoded data).
Message = tuple[str, bytes]
# The same with its age in seconds, for the worker's message-age metric.
AgedMessage = tuple[str, bytes, float]


def now_ms() -> int:
    """The clock that entries' expiry times are written in."""
    return int(time.time() * 1000)


def open_entry(entry: bytes, now: int) -> list[tuple[int, str, bytes]]:
    """``[(expires, channel, data)]`` of an entry: one, one per member for a
    group message, none if it expired."""
    expires, channel, data = entry.split(b" ", 2)
    expires = int(expires)
    if expires <= now:
        return []
    if channel != b"*":
        return [(expires, channel.decode(), data)]
    members, data = data.split(b" ", 1)
    return [(expires, member, data) for member in members.decode().split(",")]


def unpack(reply: list[bytes]) -> list[bytes]:
    """The entries of a RECEIVE reply: their lengths, then the entries
    joined (see scripts.RECEIVE)."""
    lengths, joined = reply
    if not lengths:
        return []
    entries, start = [], 0
    for length in map(int, lengths.split(b",")):
        entries.append(joined[start:start + length])
        start += length
    return entries


def answered(outcomes: list[Any]) -> list[Any]:
    """The replies among the outcomes of a call made on every shard (a
    reply, or the ChannelBackendUnavailable of a shard that is down);
    raises the first error if no shard answered."""
    replies = [outcome for outcome in outcomes if not isinstance(outcome, Exception)]
    if not replies and outcomes:
        raise outcomes[0]
    return replies


def merge_heartbeats(replies: list[list]) -> tuple[list[tuple[bytes, float]], float]:
    """What the shards' HEARTBEATS replies (``[ms covered, id, record, ms
    left, ...]``) say together: each id's record from the shard where it
    was written last (the most time left), and the longest any shard has
    covered (see ``channels.backends.base.Heartbeats``)."""
    freshest: dict[bytes, tuple[bytes, int]] = {}
    covered = 0
    for reply in replies:
        covered = max(covered, int(reply[0]))
        for index in range(1, len(reply) - 2, 3):
            id, record, left = reply[index], reply[index + 1], int(reply[index + 2])
            if id not in freshest or freshest[id][1] < left:
                freshest[id] = (record, left)
    return [(record, left / 1000) for record, left in freshest.values()], covered / 1000


class Layout:
    """The keys and entries of one backend (its PREFIX, EXPIRY, shards and
    capacities)."""

    def __init__(self, prefix: str, expiry: float, placement: Placement,
                 capacity_for: Callable[[str], int]):
        self.prefix = prefix
        self.expiry_ms = math.ceil(expiry * 1000)
        self.placement = placement
        self.capacity_for = capacity_for
        # Cached: the same channels come again and again (a socket's reply
        # channel with each of its messages), and working out a route costs
        # a send more than the rest of its arguments. As many as the names
        # channels.names caches: a worker serving more sockets at once than
        # that misses some, at the uncached cost, rather than hold megabytes.
        self.route = lru_cache(maxsize=8192)(self._route)

    def list_key(self, channel: str) -> str:
        return f"{self.prefix}c:{channel}"

    def inbox_keys(self, inbox: str) -> tuple[str, str]:
        """The inbox's list and its counts."""
        return f"{self.prefix}i:{inbox}", f"{self.prefix}n:{inbox}"

    def group_keys(self, group: str) -> list[str]:
        """The group's sorted set and its version."""
        return [f"{self.prefix}g:{group}", f"{self.prefix}v:{group}"]

    def group_add_call(self, group: str, channel: str, expiry: float | None,
                       process: str | None, fallback: float, now: int,
                       fresh: str) -> tuple[list[str], list]:
        """KEYS and ARGV of GROUP_ADD: ``expiry`` None (a bound member
        without one) becomes ``fallback`` if its process has no heartbeat."""
        expires = "" if expiry is None else now + math.ceil(expiry * 1000)
        return self.group_keys(group), [channel, expires, now, fresh, self.prefix, group,
                                        process or "", now + math.ceil(fallback * 1000)]

    def group_discard_call(self, group: str, channel: str, process: str | None,
                           fresh: str) -> tuple[list[str], list]:
        """KEYS and ARGV of GROUP_DISCARD."""
        return self.group_keys(group), [channel, fresh, self.prefix, group, process or ""]

    def group_members_call(self, group: str, now: int, known: bytes,
                           fresh: str) -> tuple[list[str], list]:
        """KEYS and ARGV of GROUP_MEMBERS."""
        return self.group_keys(group), [now, known, fresh, self.prefix, group]

    def group_check(self, group: str, known: bytes, fresh: str) -> list:
        """The part of GROUP_SEND's arguments that checks the version."""
        return ["g", *self.group_keys(group), known, fresh, self.prefix, group]

    def group_leave_args(self, process: str, channels: list[str], fresh: str) -> list:
        """ARGV of GROUP_LEAVE: closed sockets are kept out of groups for
        twice EXPIRY, longer than any message of theirs can wait."""
        return [self.prefix, process, fresh, 2 * self.expiry_ms, *channels]

    def lock_key(self, channel: str) -> str:
        return f"{self.prefix}l:{channel}"

    def match_all(self) -> str:
        """A SCAN MATCH pattern for every key of this backend."""
        return "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"

    def kind_of(self, key: bytes) -> tuple[str, str]:
        """``(kind, name)`` of one of this backend's keys: ``("c",
        channel)`` for a channel's list, ``("i", inbox)``, ``("g", group)``
        and so on (the letters of this module's docstring)."""
        kind, _, name = key.decode(errors="replace")[len(self.prefix):].partition(":")
        return kind, name

    def heartbeat_write(self, kind: str, id: str, data: bytes,
                        ttl: float) -> tuple[list[str], list]:
        """KEYS and ARGV of HEARTBEAT_SET (run on every shard); an
        interface process's renews its group members too."""
        index = f"{self.prefix}h:{kind}"
        bound = [self.prefix] if kind == INTERFACE else []
        return ([f"{index}:{id}", index, f"{self.prefix}hs"],
                [id, data, math.ceil(ttl * 1000), *bound])

    def heartbeat_read(self, kind: str) -> tuple[list[str], list]:
        """KEYS and ARGV of HEARTBEATS."""
        index = f"{self.prefix}h:{kind}"
        return [index, f"{self.prefix}hs"], [f"{index}:"]

    def heartbeat_clear(self, kind: str, id: str) -> tuple[list[str], list]:
        """KEYS and ARGV of HEARTBEAT_CLEAR."""
        index = f"{self.prefix}h:{kind}"
        return [f"{index}:{id}", index], [id]

    def entry(self, channel: str, data: bytes, now: int) -> bytes:
        return b"%d %s %s" % (now + self.expiry_ms, channel.encode(), data)

    def target(self, channel: str) -> tuple[int | None, list[str]]:
        """``(home shard or None for a normal channel, [list key] or
        [inbox key, counts key])``."""
        home = self.placement.home(channel)
        if home is None:
            return None, [self.list_key(channel)]
        index, inbox = home
        if inbox is None:
            return index, [self.list_key(channel)]
        return index, list(self.inbox_keys(inbox))

    def _route(self, channel: str) -> tuple[int | None, str, str, int]:
        """``(home shard or None, list key, counts key or '', capacity)``
        of a message to ``channel``."""
        index, keys = self.target(channel)
        return index, keys[0], keys[1] if len(keys) > 1 else "", self.capacity_for(channel)

    def send_args(self, channel: str, data: bytes, now: int) -> tuple[int | None, list]:
        """The home shard of a message (None: any) and its part of the
        arguments of SEND_MANY: list, counts or '', entry, channel,
        capacity."""
        index, key, counts, capacity = self.route(channel)
        return index, [key, counts, self.entry(channel, data, now), channel, capacity]

    def pause_call(self, channel: str, paused: bool) -> tuple[int, list, list]:
        """The shard, KEYS and ARGV of the PAUSE script for a change."""
        index, keys = self.target(channel)
        if len(keys) < 2:
            raise ValueError(f"{channel!r}: the Redis backend pauses only response channels "
                             f"made by new_name (read through a process wildcard)")
        return index, [keys[1]], [channel, PAUSED if paused else -PAUSED, self.expiry_ms]

    def push_back_args(self, entries: list[bytes]) -> list:
        """ARGV of PUSH_BACK: ``entries`` go back to the head in order."""
        return [self.expiry_ms, *reversed(entries)]

    def group_targets(self, members: bytes) -> dict:
        """Where a message to ``members`` (space-separated) goes: shard
        (None: any) to ``{"inboxes": {(inbox, capacity): names}, "lists":
        [(name, capacity)]}``, names comma-separated."""
        targets: dict = {}
        home, capacity_for = self.placement.home, self.capacity_for
        for channel in members.decode().split():
            index, inbox = home(channel) or (None, None)
            target = targets.setdefault(index, {"inboxes": defaultdict(list), "lists": []})
            if inbox is not None:
                target["inboxes"][inbox, capacity_for(channel)].append(channel)
            else:
                target["lists"].append((channel, capacity_for(channel)))
        for target in targets.values():
            target["inboxes"] = {key: ",".join(names) for key, names in target["inboxes"].items()}
        return targets

    def group_send_args(self, index: int, targets: dict, now: int, data: bytes,
                        check: list | None = None, normal: int | None = None) -> list:
        """ARGV of GROUP_SEND for the members on shard ``index`` of
        ``targets``, and the normal channels if ``normal`` is that shard;
        see GROUP_SEND for ``check``."""
        args: list = [now, self.expiry_ms, now + self.expiry_ms, data, *(check or [""])]
        target = targets.get(index, {})
        for (inbox, capacity), names in target.get("inboxes", {}).items():
            args += ["i", *self.inbox_keys(inbox), capacity, names]
        lists = list(target.get("lists", ()))
        if index == normal:
            lists += targets[None]["lists"]
        for channel, capacity in lists:
            args += ["l", self.list_key(channel), channel, capacity]
        return args
