"""The channel backend that production runs on: Redis, sharded over the
servers of HOSTS by the rules of ``sharding.py`` (docs/scaling.rst).

This is the blocking client, for workers and any thread. What it stores and
where is in ``layout.py``; how a batch reaches the shards, in ``sending.py``;
how a receive reads them, in ``receiving.py``. The interface server's
client (``reactor.py``) follows the same rules on a Twisted reactor.
"""

from __future__ import annotations

import math
import secrets
import threading
import time
from collections.abc import Sequence
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured

from channels import process
from channels.backends.base import BaseChannelBackend
from channels.backends.redis.blocking import BlockerSet
from channels.backends.redis.groups import RedisGroups
from channels.backends.redis.hosts import parse_hosts
from channels.backends.redis.layout import (
    AgedMessage,
    Layout,
    Message,
    answered,
    merge_heartbeats,
    now_ms,
    unpack,
)
from channels.backends.redis.presence import RedisPresence
from channels.backends.redis.receiving import ReceivePlan, Receiving
from channels.backends.redis.sending import SendPlan, Spread
from channels.backends.redis.shard import HEARTBEAT_TIMEOUT, READ_TIMEOUT, Shard
from channels.backends.redis.sharding import Placement
from channels.backends.redis.status import backend_status
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.names import new_token

# While some of the shards a receive waits on are down, it wakes this often
# to take them back as soon as they return.
REJOIN_INTERVAL = 1.0
# A receive on one response channel made by new_name (rather than on its
# process wildcard) cannot block on the shared inbox; it checks this often.
SINGLE_RESPONSE_POLL = (0.001, 0.05)


class RedisChannelBackend(RedisGroups, RedisPresence, BaseChannelBackend):
    keeps_heartbeats = True

    def __init__(self, hosts: list | None = None, prefix: str = "channels:", **options: Any):
        super().__init__(**options)
        if not isinstance(prefix, str):
            raise ImproperlyConfigured(
                f"CHANNEL_BACKENDS[{self.alias!r}]['PREFIX'] must be a str, not {prefix!r}"
            )
        self.addresses = parse_hosts(self.alias, hosts)
        self.prefix = prefix
        self.placement = Placement(len(self.addresses))
        self.layout = Layout(prefix, self.expiry, self.placement, self.capacity_for)
        self.receiving = Receiving(self.layout, len(self.addresses))
        self.spread = Spread(len(self.addresses))
        self._lock = threading.Lock()
        self._pid = None
        self._shards: list[Shard] = []
        self._group_targets: dict[str, tuple[bytes, dict]] = {}
        self._blocker_sets: list[BlockerSet] = []

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

    def reply_token(self, lost: str) -> str | None:
        """A token whose inbox hashes to a shard not known to be down, and
        not ``lost``'s, which may refuse pops without being down (None if
        there is none): workers find it by the name alone (sharding.py)."""
        placement = self.placement
        avoid = placement.inbox_shard(lost)
        live = {shard.index for shard in self.shards if not shard.down} - {avoid}
        if not live:
            return None
        while placement.inbox_shard(token := new_token()) not in live:
            pass
        return token

    def layer_client(self, reactor: Any) -> Any:
        """Connections on the reactor, except over TLS, which they do not
        speak (then the default, in threads)."""
        if any(issubclass(address.options.get("connection_class", object), redis.SSLConnection)
               for address in self.addresses):
            return super().layer_client(reactor)
        from channels.backends.redis.reactor import RedisReactorClient

        return RedisReactorClient(self, reactor)

    def close(self) -> None:
        with self._lock:
            shards, self._shards, self._pid = self._shards, [], None
            blocker_sets, self._blocker_sets = self._blocker_sets, []
        for blocker_set in blocker_sets:
            blocker_set.close()
        for shard in shards:
            shard.close()

    def shard_states(self) -> list[tuple[str, bool, int]]:
        return [(shard.address.label, not shard.down, shard.failures) for shard in self.shards]

    def queue_depths(self, channels: Sequence[str]) -> dict[str, int]:
        """A normal channel's list on every shard that answers (expired
        entries not yet dropped included); channels with a home shard
        (response channels) are left out."""
        depths = {}
        for channel in channels:
            if self.placement.home(channel) is not None:
                continue
            key, total = self.layout.list_key(channel), 0
            for shard in self.shards:
                try:
                    total += shard.execute("LLEN", key)
                except ChannelBackendUnavailable:
                    pass  # its messages are out of reach: not waiting for a worker
            depths[channel] = total
        return depths

    def send_plan(self, messages: Sequence[Message]) -> SendPlan:
        """A batch's way to the shards (see sending.py)."""
        return SendPlan(self.layout, messages, self.spread, self.shards)

    def receive_plan(self, channels: list[str]) -> ReceivePlan:
        """Where a receive on ``channels`` reads (see receiving.py)."""
        return self.receiving.plan(channels)

    # Sending.

    def _send(self, channel, data):
        layout = self.layout
        index, key, counts, capacity = layout.route(channel)
        keys = [key, counts] if counts else [key]
        now = now_ms()
        args = [layout.entry(channel, data, now), channel, capacity, now, layout.expiry_ms]
        if index is not None:
            shard = self.shards[index]
            try:
                sent = shard.script("SEND", keys, args, READ_TIMEOUT)
            except ChannelBackendUnavailable:
                shard.lost()
                raise
            if not sent:
                raise ChannelFull(f"Channel {channel!r} is full")
            return
        full = unreachable = None
        for shard in self.spread(self.shards):
            try:
                if shard.script("SEND", keys, args):
                    return
            except ChannelBackendUnavailable as exc:
                unreachable = (shard, exc)
                if exc.maybe_taken:
                    break  # another shard could deliver it twice
                continue
            full = ChannelFull(f"Channel {channel!r} is full")
        if full is not None:
            raise full
        unreachable[0].lost()
        raise unreachable[1]

    def _requeue(self, channel, data):
        index, keys = self.layout.target(channel)
        args = [self.layout.entry(channel, data, now_ms()), channel, self.layout.expiry_ms]
        if index is not None:
            self.shards[index].script("REQUEUE", keys, args)
            return
        error = None
        for shard in self.spread(self.shards):
            try:
                shard.script("REQUEUE", keys, args)
                return
            except ChannelBackendUnavailable as exc:
                error = exc
        raise error

    def _send_many(self, messages):
        plan = self.send_plan(messages)
        for index, positions in plan.calls:
            self._send_on(plan, index, positions)
        while (call := plan.retry()) is not None:
            self._send_on(plan, *call)
        return plan.refused()

    def _send_on(self, plan: SendPlan, index: int, positions: list[int]) -> None:
        try:
            full = self.shards[index].script("SEND_MANY", [], plan.command(positions))
        except ChannelBackendUnavailable as exc:
            plan.failed(index, positions, exc)
        else:
            plan.answered(index, positions, full)

    # Receiving.

    def _take(self, plan: ReceivePlan, limit: int) -> list[AgedMessage]:
        """Up to ``limit`` waiting messages from the first shard of ``plan``
        that has any, trying shards from a random one on. Raises
        ChannelBackendUnavailable only if every shard is."""
        indexes, shards = plan.shard_indexes, self.shards
        count = len(indexes)
        start = process.random().randrange(count) if count > 1 else 0
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

    def _take_from(self, shard: Shard, plan: ReceivePlan, limit: int) -> list[AgedMessage]:
        """Reads wait READ_TIMEOUT: a reader (an inbox's, or a worker's on
        every shard) must find a silent shard out quickly."""
        keys = plan.plain_keys.get(shard.index)
        if keys is None:
            now = now_ms()
            entries = unpack(shard.script("RECEIVE", [], plan.receive_args(shard.index, now, limit),
                                          READ_TIMEOUT))
            return self.receiving.deliver_aged(entries, now, limit)
        # LMPOP favours the first key: start at a random one.
        start = process.random().randrange(len(keys)) if len(keys) > 1 else 0
        packed = plan.packed.get((shard.index, start, limit))
        if packed is None:
            rotated = keys[start:] + keys[:start]
            packed = shard.pack("LMPOP", len(keys), *rotated, "LEFT", "COUNT", limit)
            if len(plan.packed) < 1024:
                plan.packed[shard.index, start, limit] = packed
        while True:
            popped = shard.execute_packed(packed, READ_TIMEOUT)
            if popped is None:
                return []
            taken = self.receiving.deliver_aged(popped[1], now_ms(), limit)
            if taken:  # else all had expired: look again
                return taken

    def _receive_many(self, channels):
        if not channels:
            return None, None
        plan = self.receiving.plan(channels)
        taken = self.receiving.waiting_aged(plan, 1) or self._take(plan, 1)
        return taken[0][:2] if taken else (None, None)

    def _receive_many_blocking(self, channels, timeout):
        batch = self._receive_batch(channels, 1, timeout)
        return batch[0] if batch else (None, None)

    def _receive_batch(self, channels, limit, timeout):
        return [(channel, data) for channel, data, _ in
                self._receive_batch_aged(channels, limit, timeout)]

    def _receive_batch_aged(self, channels, limit, timeout):
        if not channels:
            if timeout:
                time.sleep(timeout)
            return []
        plan = self.receiving.plan(channels)
        taken = self.receiving.waiting_aged(plan, limit)
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
            # A pop from an inbox takes one entry, settled below; from
            # channels' own lists, up to ``limit``, with nothing to settle.
            got = self._block(plan, remaining, 1 if plan.counts else limit)
            if got is None:
                continue
            shard, key, entries = got
            now = now_ms()
            settle = plan.settlement(key, entries)
            if settle is not None:
                try:
                    # Settle it and take what came behind it in one call.
                    entries += unpack(shard.script(
                        "RECEIVE", [], plan.receive_args(shard.index, now, limit - 1, settle)))
                except ChannelBackendUnavailable:
                    # The message is taken: deliver it. Its channel's count
                    # stays one too high until the inbox's keys expire.
                    pass
            taken = self.receiving.deliver_aged(entries, now, limit)
            if taken:
                return taken

    def _block(self, plan: ReceivePlan, remaining: float | None, count: int):
        """Block on the plan's live shards; ``(shard, key, messages)`` (at
        most ``count``) or None after ``remaining`` seconds (or sooner, to
        take back a shard that was down)."""
        shards = self.shards
        live = {shards[index]: plan.blocking_keys(index) for index in plan.shard_indexes
                if shards[index].available}
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
            shard.script("PUSH_BACK", [key], self.layout.push_back_args(entries))
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
        index, keys, args = self.layout.pause_call(channel, paused)
        self.shards[index].script("PAUSE", keys, args)

    # Locks.

    def _lock_channel(self, channel, expiry):
        shard = self.shards[self.placement.lock_shard(channel)]
        token = secrets.token_hex(16)
        key, milliseconds = self.layout.lock_key(channel), math.ceil(expiry * 1000)
        taken = shard.execute("SET", key, token, "NX", "PX", milliseconds)
        return token if taken else None

    def _unlock_channel(self, channel, token):
        shard = self.shards[self.placement.lock_shard(channel)]
        return bool(shard.script("UNLOCK", [self.layout.lock_key(channel)], [token]))

    # Heartbeats: on every shard (layout.py).

    def _set_heartbeat(self, kind, id, data, ttl):
        self._on_every_shard("HEARTBEAT_SET", *self.layout.heartbeat_write(kind, id, data, ttl))

    def _heartbeats(self, kind):
        return merge_heartbeats(self._on_every_shard("HEARTBEATS",
                                                     *self.layout.heartbeat_read(kind)))

    def _clear_heartbeat(self, kind, id):
        self._on_every_shard("HEARTBEAT_CLEAR", *self.layout.heartbeat_clear(kind, id))

    def _on_every_shard(self, script: str, keys: list, args: list) -> list:
        outcomes = []
        for shard in self.shards:
            try:
                outcomes.append(shard.script(script, keys, args, HEARTBEAT_TIMEOUT))
            except ChannelBackendUnavailable as exc:
                outcomes.append(exc)
        return answered(outcomes)

    def _status(self, channels):
        return backend_status(self.shards, self.layout, self.capacity_for, channels)

    def flush(self):
        """Delete every key under PREFIX on every shard (with an empty PREFIX,
        every key of the database), and the members' messages of group
        messages that this process took but has not handed out yet."""
        self.receiving.clear()
        self._group_targets.clear()
        pattern = self.layout.match_all()
        for shard in self.shards:
            cursor = 0
            while True:
                cursor, keys = shard.execute("SCAN", cursor, "MATCH", pattern, "COUNT", 1000)
                if keys:
                    shard.execute("UNLINK", *keys)
                if int(cursor) == 0:
                    break
