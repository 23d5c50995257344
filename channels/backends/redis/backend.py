"""The channel backend that production runs on: Redis, sharded over the
servers of HOSTS by the rules of ``sharding.py`` (docs/scaling.rst).

Keys, under PREFIX: ``c:<channel>`` a channel's own list (on every shard
for a normal channel), ``i:<wildcard>`` and ``n:<wildcard>`` an inbox and its
per-channel counts, ``g:<group>`` a group (a sorted set scored by expiry)
and ``v:<group>`` its version, ``l:<channel>`` a lock. Every key expires
once its contents have.
"""

from __future__ import annotations

import itertools
import math
import random
import secrets
import threading
import time
from collections import defaultdict, deque
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured

from channels import process
from channels.backends.base import BaseChannelBackend
from channels.backends.redis.blocking import BlockerSet
from channels.backends.redis.hosts import parse_hosts
from channels.backends.redis.shard import Shard
from channels.backends.redis.sharding import Placement, inbox_of
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.names import is_wildcard

# While some of the shards a receive waits on are down, it wakes this often
# to take them back as soon as they return.
REJOIN_INTERVAL = 1.0
# A receive on one response channel made by new_name (rather than on its
# process wildcard) cannot block on the shared inbox; it checks this often.
SINGLE_RESPONSE_POLL = (0.001, 0.05)
# What pausing adds to a channel's count (see scripts.PAUSE).
PAUSED = 1 << 40


def _unpack(reply: list[bytes]) -> list[bytes]:
    """The messages of a RECEIVE reply: lengths, then the messages joined."""
    lengths, joined = reply
    if not lengths:
        return []
    messages, start = [], 0
    for length in map(int, lengths.split(b",")):
        messages.append(joined[start:start + length])
        start += length
    return messages


class _Source:
    """Where one receive looks on one shard: a list, and for an inbox its
    counts and, to take a single channel's messages, that channel."""

    __slots__ = ("key", "counts", "only", "inbox")

    def __init__(self, key: str, counts: str = "", only: str = "", inbox: str = ""):
        self.key, self.counts, self.only, self.inbox = key, counts, only, inbox

    def args(self) -> tuple[str, str, str]:
        return self.key, self.counts, self.only


class _Plan:
    """Which sources a list of channel names means, shard by shard."""

    def __init__(self, sources: dict[int, list[_Source]]):
        self.sources = sources
        self.shard_indexes = list(sources)
        self.args = {index: [arg for source in found for arg in source.args()]
                     for index, found in sources.items()}
        self.counts = {source.key: source.counts for found in sources.values()
                       for source in found if source.counts}
        # A single response channel in a shared inbox cannot be popped
        # blocking.
        self.pollable_only = any(source.only for found in sources.values() for source in found)
        # Shards where the plan reads only channels' own lists: a plain
        # LMPOP serves them, cheaper for Redis than a script.
        self.plain_keys = {index: [source.key for source in found] for index, found in
                           sources.items() if not any(s.counts or s.only for s in found)}
        self.packed: dict[tuple[int, int, int], list[bytes]] = {}
        # Inboxes read whole (through a process wildcard).
        self.inboxes = [source.inbox for found in sources.values() for source in found
                        if source.inbox and not source.only]


class RedisChannelBackend(BaseChannelBackend):
    def __init__(self, hosts: list | None = None, prefix: str = "channels:", **options: Any):
        super().__init__(**options)
        if not isinstance(prefix, str):
            raise ImproperlyConfigured(
                f"CHANNEL_BACKENDS[{self.alias!r}]['PREFIX'] must be a str, not {prefix!r}"
            )
        self.addresses = parse_hosts(self.alias, hosts)
        self.prefix = prefix
        self.placement = Placement(len(self.addresses))
        self._expiry_ms = math.ceil(self.expiry * 1000)
        self._lock = threading.Lock()
        self._pid = None
        self._shards: list[Shard] = []
        self._plans: dict[tuple[str, ...], _Plan] = {}
        self._waiting: dict[str, deque[tuple[int, str, bytes]]] = defaultdict(deque)
        self._group_targets: dict[str, tuple[bytes, dict]] = {}
        self._blocker_sets: list[BlockerSet] = []
        self._turn = itertools.count(random.randrange(len(self.addresses)))

    # Connections, made at first use and again in a forked child.

    @property
    def shards(self) -> list[Shard]:
        if self._pid != process.pid:
            with self._lock:
                if self._pid != process.pid:
                    self._shards = [Shard(index, address, self.alias)
                                    for index, address in enumerate(self.addresses)]
                    self._blocker_sets = []
                    self._pid = process.pid
        return self._shards

    def reactor_client(self, reactor: Any) -> Any:
        """Connections on the reactor, except over TLS, which they do not
        speak (the server then uses threads)."""
        if any(issubclass(address.options.get("connection_class", object), redis.SSLConnection)
               for address in self.addresses):
            return None
        from channels.backends.redis.reactor import ReactorClient

        return ReactorClient(self, reactor)

    def close(self) -> None:
        with self._lock:
            shards, self._shards, self._pid = self._shards, [], None
            blocker_sets, self._blocker_sets = self._blocker_sets, []
        for blocker_set in blocker_sets:
            blocker_set.close()
        for shard in shards:
            shard.close()

    # Keys and messages.

    def _list_key(self, channel: str) -> str:
        return f"{self.prefix}c:{channel}"

    def _inbox_keys(self, inbox: str) -> tuple[str, str]:
        return f"{self.prefix}i:{inbox}", f"{self.prefix}n:{inbox}"

    def _lock_key(self, channel: str) -> str:
        return f"{self.prefix}l:{channel}"

    @staticmethod
    def _now_ms() -> int:
        return int(time.time() * 1000)

    def _entry(self, channel: str, data: bytes, now_ms: int) -> bytes:
        return b"%d %s %s" % (now_ms + self._expiry_ms, channel.encode(), data)

    @staticmethod
    def _open(entry: bytes, now_ms: int) -> list[tuple[int, str, bytes]]:
        """``[(expires, channel, data)]`` of a stored message: one, one per
        member for a group message, none if it expired."""
        expires, channel, data = entry.split(b" ", 2)
        expires = int(expires)
        if expires <= now_ms:
            return []
        if channel != b"*":
            return [(expires, channel.decode(), data)]
        members, data = data.split(b" ", 1)
        return [(expires, member, data) for member in members.decode().split(",")]

    def _target(self, channel: str) -> tuple[int | None, list[str]]:
        """``(home shard or None for a normal channel, [list key] or
        [inbox key, counts key])``."""
        home = self.placement.home(channel)
        if home is None:
            return None, [self._list_key(channel)]
        index, inbox = home
        if inbox is None:
            return index, [self._list_key(channel)]
        return index, list(self._inbox_keys(inbox))

    def _spread(self) -> list[Shard]:
        """The shards a normal channel's message may go to, the next in
        turn first and those known to be down left out."""
        shards = self.shards
        start = next(self._turn) % len(shards)
        ordered = shards[start:] + shards[:start]
        live = [shard for shard in ordered if shard.available]
        if not live:
            raise ordered[0].unavailable()
        return live

    # Sending.

    def _send(self, channel, data):
        index, keys = self._target(channel)
        now = self._now_ms()
        args = [self._entry(channel, data, now), channel, self.capacity_for(channel), now,
                self._expiry_ms]
        if index is not None:
            if not self.shards[index].script("SEND", keys, args):
                raise ChannelFull(f"Channel {channel!r} is full")
            return
        full = unreachable = None
        for shard in self._spread():
            try:
                if shard.script("SEND", keys, args):
                    return
            except ChannelBackendUnavailable as exc:
                unreachable = exc
                continue
            full = ChannelFull(f"Channel {channel!r} is full")
        raise full or unreachable

    def _requeue(self, channel, data):
        index, keys = self._target(channel)
        now = self._now_ms()
        args = [self._entry(channel, data, now), channel, self._expiry_ms]
        if index is not None:
            self.shards[index].script("REQUEUE", keys, args)
            return
        error = None
        for shard in self._spread():
            try:
                shard.script("REQUEUE", keys, args)
                return
            except ChannelBackendUnavailable as exc:
                error = exc
        raise error

    def _send_many(self, messages):
        """One script call per shard for the whole batch; a normal channel's
        messages all go with those of the next shard in turn, in order, and
        only the ones it finds full or cannot take try the other shards."""
        now = self._now_ms()
        batches: dict[int | None, list[int]] = defaultdict(list)
        args: list[list] = []
        for position, (channel, data) in enumerate(messages):
            index, message_args = self._send_many_item(channel, data, now)
            batches[index].append(position)
            args.append(message_args)
        normal = batches.pop(None, [])
        retry = set(normal)
        spread = self._spread() if normal else []
        if normal:
            batches[spread[0].index] += normal
        full: list[int] = []
        error = unreached = None  # messages to home shards / normal ones not sent
        for index, positions in batches.items():
            try:
                full += self._send_batch(self.shards[index], positions, args, now)
            except ChannelBackendUnavailable as exc:
                if any(position not in retry for position in positions):
                    error = exc
                if normal and index == spread[0].index:
                    full += normal  # the other shards may take them below
                    unreached = exc
        if normal:
            left = [position for position in full if position in retry]
            full = [position for position in full if position not in retry]
            for shard in spread[1:]:
                if not left:
                    break
                try:
                    left = self._send_batch(shard, left, args, now)
                    unreached = None  # a shard answered: what is left was full
                except ChannelBackendUnavailable:
                    pass
            if left and unreached is not None:
                error = error or unreached
            full += left
        if error is not None:
            raise error
        return [messages[position][0] for position in sorted(full)]

    def _send_many_item(self, channel: str, data: bytes, now: int) -> tuple[int | None, list]:
        """The home shard of a message (None: any) and its part of the
        arguments of SEND_MANY."""
        index, keys = self._target(channel)
        return index, [keys[0], keys[1] if len(keys) > 1 else "",
                       self._entry(channel, data, now), channel, self.capacity_for(channel)]

    def _send_many_args(self, positions: list[int], args: list[list], now: int) -> list:
        flat = [now, self._expiry_ms]
        for position in positions:
            flat += args[position]
        return flat

    def _send_batch(self, shard: Shard, positions: list[int], args: list[list],
                    now: int) -> list[int]:
        """Send ``positions`` of a batch on ``shard``; the positions whose
        channel was full."""
        full = shard.script("SEND_MANY", [], self._send_many_args(positions, args, now))
        return [positions[number - 1] for number in full]

    # Receiving.

    def _plan(self, channels: list[str]) -> _Plan:
        key = tuple(channels)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        sources: dict[int, list[_Source]] = defaultdict(list)
        for channel in dict.fromkeys(channels):
            home = self.placement.home(channel)
            if home is None:
                for index in range(len(self.addresses)):
                    sources[index].append(_Source(self._list_key(channel)))
                continue
            index, inbox = home
            if inbox is None:
                if is_wildcard(channel):
                    raise ValueError(
                        f"{channel!r}: the Redis backend reads process wildcards of "
                        f"response channels only (a prefix starting with '!')"
                    )
                sources[index].append(_Source(self._list_key(channel)))
            else:
                source = _Source(*self._inbox_keys(inbox), inbox=inbox)
                if not is_wildcard(channel):
                    source.only = channel
                sources[index].append(source)
        plan = _Plan(dict(sources))
        if len(self._plans) >= 1024:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def _take(self, plan: _Plan, limit: int) -> list[tuple[str, bytes]]:
        """Up to ``limit`` waiting messages from the first shard of ``plan``
        that has any, trying shards from a random one on. Raises
        ChannelBackendUnavailable only if every shard is."""
        indexes, shards = plan.shard_indexes, self.shards
        count = len(indexes)
        start = random.randrange(count) if count > 1 else 0
        errors = []
        for turn in range(count):
            shard = shards[indexes[(start + turn) % count]]
            try:
                taken = self._take_from(shard, plan, limit)
            except ChannelBackendUnavailable as exc:
                errors.append(exc)
                continue
            if taken:
                return taken
        if len(errors) == len(indexes):
            raise errors[0]
        return []

    def _take_from(self, shard: Shard, plan: _Plan, limit: int) -> list[tuple[str, bytes]]:
        keys = plan.plain_keys.get(shard.index)
        if keys is None:
            args = plan.args[shard.index]
            now = self._now_ms()
            entries = _unpack(shard.script(
                "RECEIVE", [], [now, limit, random.randrange(len(args) // 3), "", "", *args]))
            return self._deliver(entries, now, limit)
        # LMPOP favours the first key: start at a random one.
        start = random.randrange(len(keys)) if len(keys) > 1 else 0
        packed = plan.packed.get((shard.index, start, limit))
        if packed is None:
            rotated = keys[start:] + keys[:start]
            packed = shard.pack("LMPOP", len(keys), *rotated, "LEFT", "COUNT", limit)
            if len(plan.packed) < 1024:
                plan.packed[shard.index, start, limit] = packed
        while True:
            popped = shard.execute_packed(packed)
            if popped is None:
                return []
            taken = self._deliver(popped[1], self._now_ms(), limit)
            if taken:  # else all had expired: look again
                return taken

    def _deliver(self, entries: list[bytes], now_ms: int,
                 limit: int) -> list[tuple[str, bytes]]:
        """The first ``limit`` messages of ``entries``. The rest of a group
        message's members wait in this process (they are its own clients'
        messages: no other process reads its inbox) for the next receive."""
        opened = [item for entry in entries for item in self._open(entry, now_ms)]
        if len(opened) > limit:
            with self._lock:
                for item in opened[limit:]:
                    self._waiting[inbox_of(item[1])].append(item)
            del opened[limit:]
        return [(channel, data) for _, channel, data in opened]

    def _waiting_for(self, plan: _Plan, limit: int) -> list[tuple[str, bytes]]:
        """Members' messages of group messages already taken from the
        plan's inboxes, up to ``limit``."""
        if not self._waiting or not plan.inboxes:
            return []
        now, taken = self._now_ms(), []
        with self._lock:
            for inbox in plan.inboxes:
                waiting = self._waiting.get(inbox)
                while waiting and len(taken) < limit:
                    expires, channel, data = waiting.popleft()
                    if expires > now:
                        taken.append((channel, data))
                if waiting is not None and not waiting:
                    del self._waiting[inbox]
        return taken

    def _receive_many(self, channels):
        if not channels:
            return None, None
        plan = self._plan(channels)
        taken = self._waiting_for(plan, 1) or self._take(plan, 1)
        return taken[0] if taken else (None, None)

    def _receive_many_blocking(self, channels, timeout):
        batch = self._receive_batch(channels, 1, timeout)
        return batch[0] if batch else (None, None)

    def _receive_batch(self, channels, limit, timeout):
        if not channels:
            if timeout:
                time.sleep(timeout)
            return []
        plan = self._plan(channels)
        taken = self._waiting_for(plan, limit)
        if taken:
            return taken
        if len(plan.shard_indexes) > 1 or plan.pollable_only or plan.counts or timeout == 0:
            # Whatever is waiting, in one round trip; a worker on one shard's
            # lists goes straight to the blocking pop, which takes up to
            # ``limit`` at once when busy.
            taken = self._take(plan, limit)
            if taken or timeout == 0:
                return taken
        deadline = None if timeout is None else time.monotonic() + timeout
        poll = SINGLE_RESPONSE_POLL[0]
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining < 0.001:
                return []
            if plan.pollable_only:
                time.sleep(min(poll, remaining or poll))
                poll = min(poll * 2, SINGLE_RESPONSE_POLL[1])
                taken = self._take(plan, limit)
                if taken:
                    return taken
                continue
            # A pop from an inbox takes one message, settled below; from
            # channels' own lists, up to ``limit``, with nothing to settle.
            got = self._block(plan, remaining, 1 if plan.counts else limit)
            if got is None:
                continue
            shard, key, entries = got
            now = self._now_ms()
            counts = plan.counts.get(key.decode(), "")
            if counts:
                channel = entries[0].split(b" ", 2)[1]
                try:
                    if limit > 1:
                        # Settle it and take more in one call.
                        entries += _unpack(shard.script(
                            "RECEIVE", [], [now, limit - 1, 0, counts, channel,
                                            *plan.args[shard.index]]))
                    else:
                        shard.script("SETTLE", [counts], [channel])
                except ChannelBackendUnavailable:
                    # The message is taken: deliver it. Its channel's count
                    # stays one too high until the inbox's keys expire.
                    pass
            taken = self._deliver(entries, now, limit)
            if taken:
                return taken

    def _block(self, plan: _Plan, remaining: float | None, count: int):
        """Block on the plan's live shards; ``(shard, key, messages)`` (at
        most ``count``) or None after ``remaining`` seconds (or sooner, to
        take back a shard that was down)."""
        shards = self.shards
        live = {}
        for index in plan.shard_indexes:
            shard = shards[index]
            if shard.available:
                keys = [source.key for source in plan.sources[index]]
                if len(keys) > 1:
                    random.shuffle(keys)  # BLMPOP favours the first key
                live[shard] = keys
        if not live:
            raise shards[plan.shard_indexes[0]].unavailable()
        wait = remaining or 0.0
        if len(live) < len(plan.shard_indexes):
            wait = min(wait or REJOIN_INTERVAL, REJOIN_INTERVAL)
        blocker_set = self._checkout()
        try:
            return blocker_set.wait(live, wait, count, self._push_back)
        except ChannelBackendUnavailable:
            raise  # the set was freed
        except BaseException:
            blocker_set.close()  # a pop may still be running: never reuse
            raise

    def _push_back(self, shard: Shard, key: bytes, entries: list[bytes]) -> None:
        try:
            shard.script("PUSH_BACK", [key], [self._expiry_ms, *reversed(entries)])
        except ChannelBackendUnavailable:
            pass  # the shard went away with the message

    def _checkout(self) -> BlockerSet:
        with self._lock:
            if self._blocker_sets:
                return self._blocker_sets.pop()
        return BlockerSet(self._checkin)

    def _checkin(self, blocker_set: BlockerSet) -> None:
        with self._lock:
            if self._pid == process.pid:  # not closed since
                self._blocker_sets.append(blocker_set)
                return
        blocker_set.close()

    def _set_paused(self, channel, paused):
        index, keys, args = self._pause_call(channel, paused)
        self.shards[index].script("PAUSE", keys, args)

    def _pause_call(self, channel: str, paused: bool) -> tuple[int, list, list]:
        """The shard, KEYS and ARGV of the PAUSE script for a change."""
        index, keys = self._target(channel)
        if len(keys) < 2:
            raise ValueError(f"{channel!r}: the Redis backend pauses only response channels "
                             f"made by new_name (read through a process wildcard)")
        return index, [keys[1]], [channel, PAUSED if paused else -PAUSED, self._expiry_ms]

    # Groups.

    def _group_keys(self, group: str) -> list[str]:
        return [f"{self.prefix}g:{group}", f"{self.prefix}v:{group}"]

    def _group_add(self, group, channel, expiry):
        now = self._now_ms()
        shard = self.shards[self.placement.group_shard(group)]
        shard.script("GROUP_ADD", self._group_keys(group),
                     [channel, now + math.ceil(expiry * 1000), now, secrets.token_hex(8)])

    def _group_discard(self, group, channel):
        shard = self.shards[self.placement.group_shard(group)]
        shard.script("GROUP_DISCARD", self._group_keys(group), [channel, secrets.token_hex(8)])

    def _members(self, group: str, known: bytes = b"") -> list[bytes]:
        """``[version]`` if the group's members are still those of version
        ``known``, else ``[version, members space-separated]``."""
        shard = self.shards[self.placement.group_shard(group)]
        return shard.script("GROUP_MEMBERS", self._group_keys(group),
                            [self._now_ms(), known, secrets.token_hex(8)])

    def _group_channels(self, group):
        return self._members(group)[1].decode().split()

    def _route(self, channel: str) -> tuple[int | None, str | None, int]:
        """``(home shard or None, inbox or None, capacity)`` of a channel."""
        home = self.placement.home(channel)
        index, inbox = home if home is not None else (None, None)
        return index, inbox, self.capacity_for(channel)

    def _targets(self, members: bytes) -> dict:
        """Where a message to ``members`` goes: shard (None: any) to
        ``{"inboxes": {(inbox, capacity): names}, "lists": [(name,
        capacity)]}``."""
        targets: dict = {}
        for channel in members.decode().split():
            index, inbox, capacity = self._route(channel)
            target = targets.setdefault(index, {"inboxes": defaultdict(list), "lists": []})
            if inbox is not None:
                target["inboxes"][inbox, capacity].append(channel)
            else:
                target["lists"].append((channel, capacity))
        for target in targets.values():
            target["inboxes"] = {key: ",".join(names) for key, names in target["inboxes"].items()}
        return targets

    def _send_group(self, group, data):
        """One call per shard with members, the group's own first. Where the
        members' messages go is remembered with the group's version, as
        members mostly stay the same from one message to the next: the call
        to the group's shard checks the version and sends in one go, and
        only when the members changed does it answer them instead, to be
        routed again."""
        now = self._now_ms()
        home = self.placement.group_shard(group)
        known = self._group_targets.get(group)
        sent_home = False
        if known is None:
            targets = self._remember(group, self._members(group))
            normal = self._normal(targets)
        else:
            targets = known[1]
            normal = self._normal(targets)
            check = ["g", *self._group_keys(group), known[0], secrets.token_hex(8)]
            changed = self._group_send(home, targets, now, data, check, normal)
            if changed is None:
                sent_home = True
            else:
                targets = self._remember(group, changed)
                normal = self._normal(targets)
        shards = {index for index in targets if index is not None} | {normal}
        shards.discard(None)
        if sent_home:
            shards.discard(home)
        error = None
        for index in sorted(shards):
            try:
                self._group_send(index, targets, now, data, normal=normal)
            except ChannelBackendUnavailable as exc:
                error = exc  # the other shards' members still get it
        if error is not None:
            raise error

    def _normal(self, targets: dict) -> int | None:
        """The shard for a group's normal channels (rare in a group): the
        next in turn."""
        return self._spread()[0].index if None in targets else None

    def _remember(self, group: str, reply: list[bytes]) -> dict:
        targets = self._targets(reply[1])
        if len(self._group_targets) >= 1024:
            self._group_targets.clear()
        self._group_targets[group] = (reply[0], targets)
        return targets

    def _group_send(self, index: int, targets: dict, now: int, data: bytes,
                    check: list | None = None, normal: int | None = None) -> list | None:
        """Send to the members on shard ``index``, and to the normal
        channels if ``normal`` is that shard; see GROUP_SEND for ``check``."""
        args: list = [now, self._expiry_ms, now + self._expiry_ms, data, *(check or [""])]
        target = targets.get(index, {})
        for (inbox, capacity), names in target.get("inboxes", {}).items():
            args += ["i", *self._inbox_keys(inbox), capacity, names]
        lists = list(target.get("lists", ()))
        if index == normal:
            lists += targets[None]["lists"]
        for channel, capacity in lists:
            args += ["l", self._list_key(channel), channel, capacity]
        return self.shards[index].script("GROUP_SEND", [], args)

    # Locks.

    def _lock_channel(self, channel, expiry):
        shard = self.shards[self.placement.lock_shard(channel)]
        token = secrets.token_hex(16)
        key, milliseconds = self._lock_key(channel), math.ceil(expiry * 1000)
        taken = shard.execute("SET", key, token, "NX", "PX", milliseconds)
        return token if taken else None

    def _unlock_channel(self, channel, token):
        shard = self.shards[self.placement.lock_shard(channel)]
        return bool(shard.script("UNLOCK", [self._lock_key(channel)], [token]))

    def flush(self):
        """Delete every key under PREFIX on every shard (with an empty PREFIX,
        every key of the database), and the members' messages of group
        messages that this process took but has not handed out yet."""
        with self._lock:
            self._waiting.clear()
        self._group_targets.clear()
        pattern = "".join("\\" + c if c in "*?[]\\" else c for c in self.prefix) + "*"
        for shard in self.shards:
            cursor = 0
            while True:
                cursor, keys = shard.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                if keys:
                    shard.execute("UNLINK", *keys)
                if int(cursor) == 0:
                    break
