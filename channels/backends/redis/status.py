"""What each shard holds, for ``RedisChannelBackend.status`` (the contract:
``channels.backends.status``).

One pass per shard: a PING timed for the round trip, then SCAN over the
backend's keys (``COUNT`` at a time, so that a big database is never held
up by one long command, as KEYS would), each batch's list lengths asked in
the same round trip as the next batch of the scan. There is no registry of
channel names to read instead: a normal channel's list exists on a shard
while it holds messages there, and goes when they expire (layout.py).
Its cost grows with the number of the backend's keys: about one round trip
per ``SCAN_COUNT`` keys (groups, locks, session marks and channels alike).

A list's length counts messages until they are taken or dropped, so an
expired message that nobody has taken yet still counts.
"""

from __future__ import annotations

import re
import time

from channels.backends.redis.layout import Layout
from channels.backends.redis.shard import Shard
from channels.backends.status import ChannelStatus, ShardStatus
from channels.exceptions import ChannelBackendUnavailable
from channels.names import is_normal_channel

# Keys asked of a shard by each SCAN call.
SCAN_COUNT = 1000

_USED_MEMORY = re.compile(rb"^used_memory:(\d+)", re.MULTILINE)


def shard_status(shard: Shard, layout: Layout) -> tuple[ShardStatus, dict[str, int]]:
    """The shard's figures, and the depth of each normal channel it holds
    messages of."""
    status = ShardStatus(shard.address.label, False)
    try:
        started = time.perf_counter()
        shard.execute("PING")
        status.round_trip = time.perf_counter() - started
        info, scanned = shard.execute_many(
            ("INFO", "memory"), ("SCAN", 0, "MATCH", layout.match_all(), "COUNT", SCAN_COUNT))
        if isinstance(info, bytes) and (found := _USED_MEMORY.search(info)):
            status.used_memory = int(found.group(1))
        depths: dict[str, int] = {}
        groups = replies = 0
        while True:
            if isinstance(scanned, Exception):
                raise scanned
            cursor, keys = scanned
            # One LLEN per list: a normal channel's by name, None for a
            # response channel's or an inbox (counted together).
            lists, commands = [], []
            for key in keys:
                kind, name = layout.kind_of(key)
                if kind == "v":  # every group with members has its version
                    groups += 1
                elif kind in ("c", "i"):
                    lists.append(name if kind == "c" and is_normal_channel(name) else None)
                    commands.append(("LLEN", key))
            more = int(cursor) != 0
            if more:
                commands.append(("SCAN", cursor, "MATCH", layout.match_all(),
                                 "COUNT", SCAN_COUNT))
            answers = shard.execute_many(*commands) if commands else []
            for name, length in zip(lists, answers, strict=False):  # then the SCAN
                length = length if isinstance(length, int) else 0
                if name is None:
                    replies += length
                elif length:
                    depths[name] = depths.get(name, 0) + length
            if not more:
                break
            scanned = answers[-1]
    except ChannelBackendUnavailable as exc:
        status.error = str(exc)
        return status, {}
    status.up = True
    status.groups = groups
    status.replies_waiting = replies
    return status, depths


def backend_status(shards: list[Shard], layout: Layout, capacity_for,
                   channels: set[str]) -> tuple[list[ShardStatus], list[ChannelStatus]]:
    """Every shard's figures, and every normal channel's depth on each."""
    statuses, depths = [], []
    for shard in shards:
        status, held = shard_status(shard, layout)
        statuses.append(status)
        depths.append(held if status.up else None)
    names = sorted(channels.union(*(held for held in depths if held)))
    return statuses, [ChannelStatus(name, [None if held is None else held.get(name, 0)
                                           for held in depths], capacity_for(name))
                      for name in names]
