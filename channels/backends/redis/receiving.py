"""How a receive reads the shards, with no I/O: which keys a list of channel
names means on each shard (a ``ReceivePlan``), the arguments of the calls
that read them, and turning what a read took into messages. The blocking
client (``backend.py``) and the reactor client (``reactor.py``) both read
through it.

A read of an inbox either takes what waits with the RECEIVE script, which
also settles the counts, or, when nothing waits, blocks with ``BLMPOP`` for
one entry; RECEIVE then settles that entry's count and takes whatever came
behind it in the same call (``ReceivePlan.settlement``). A group message
for several members of an inbox is one entry; the members' messages beyond
a receive's limit wait in this process for the next receive (they are its
own clients' messages: no other process reads its inbox).
"""

from __future__ import annotations

import threading
from collections import defaultdict, deque

from channels import process
from channels.backends.redis.layout import AgedMessage, Layout, Message, now_ms, open_entry
from channels.backends.redis.sharding import inbox_of
from channels.names import is_wildcard


class Source:
    """Where one receive looks on one shard: a list, and for an inbox its
    counts and, to take a single channel's messages, that channel."""

    __slots__ = ("key", "counts", "only", "inbox")

    def __init__(self, key: str, counts: str = "", only: str = "", inbox: str = ""):
        self.key, self.counts, self.only, self.inbox = key, counts, only, inbox

    def args(self) -> tuple[str, str, str]:
        return self.key, self.counts, self.only


class ReceivePlan:
    """Which sources a list of channel names means, shard by shard."""

    def __init__(self, sources: dict[int, list[Source]]):
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
        # The transport's packed LMPOP commands, by (shard, first key, count).
        self.packed: dict[tuple[int, int, int], list[bytes]] = {}
        # Inboxes read whole (through a process wildcard).
        self.inboxes = [source.inbox for found in sources.values() for source in found
                        if source.inbox and not source.only]

    def receive_args(self, index: int, now: int, limit: int,
                     settle: tuple[str, bytes] | None = None) -> list:
        """ARGV of RECEIVE on shard ``index``: up to ``limit`` entries, from
        a random source on, after settling ``settle`` (see settlement)."""
        args = self.args[index]
        sources = len(args) // 3
        first = process.random().randrange(sources) if sources > 1 else 0
        return [now, limit, first, *(settle or ("", "")), *args]

    def blocking_keys(self, index: int) -> list[str]:
        """The keys of shard ``index`` for a blocking pop, from a random
        one on (BLMPOP favours the first)."""
        keys = [source.key for source in self.sources[index]]
        if len(keys) > 1:
            process.random().shuffle(keys)
        return keys

    def settlement(self, key: bytes, entries: list[bytes]) -> tuple[str, bytes] | None:
        """``(counts, channel)`` for RECEIVE to settle, after a blocking pop
        took ``entries`` (one) from the inbox ``key``; None if ``key`` is a
        channel's own list, which keeps no counts."""
        counts = self.counts.get(key.decode(), "")
        if not counts:
            return None
        return counts, entries[0].split(b" ", 2)[1]


class Receiving:
    """The receive plans of one backend, and the members' messages of group
    messages it took but has not handed out yet."""

    def __init__(self, layout: Layout, shards: int):
        self.layout = layout
        self.shards = shards
        self._plans: dict[tuple[str, ...], ReceivePlan] = {}
        self._lock = threading.Lock()
        self._waiting: dict[str, deque[tuple[int, str, bytes]]] = defaultdict(deque)

    def plan(self, channels: list[str]) -> ReceivePlan:
        key = tuple(channels)
        plan = self._plans.get(key)
        if plan is not None:
            return plan
        layout = self.layout
        sources: dict[int, list[Source]] = defaultdict(list)
        for channel in dict.fromkeys(channels):
            home = layout.placement.home(channel)
            if home is None:
                for index in range(self.shards):
                    sources[index].append(Source(layout.list_key(channel)))
                continue
            index, inbox = home
            if inbox is None:
                if is_wildcard(channel):
                    raise ValueError(
                        f"{channel!r}: the Redis backend reads process wildcards of "
                        f"response channels only (a prefix starting with '!')"
                    )
                sources[index].append(Source(layout.list_key(channel)))
            else:
                source = Source(*layout.inbox_keys(inbox), inbox=inbox)
                if not is_wildcard(channel):
                    source.only = channel
                sources[index].append(source)
        plan = ReceivePlan(dict(sources))
        if len(self._plans) >= 1024:
            self._plans.clear()
        self._plans[key] = plan
        return plan

    def deliver(self, entries: list[bytes], now: int, limit: int) -> list[Message]:
        """The first ``limit`` messages of ``entries``; the rest of a group
        message's members wait for the next receive."""
        return [(channel, data) for _, channel, data in self._opened(entries, now, limit)]

    def deliver_aged(self, entries: list[bytes], now: int, limit: int) -> list[AgedMessage]:
        """``deliver``, with each message's age (see ``age``)."""
        return [(channel, data, self.age(expires, now))
                for expires, channel, data in self._opened(entries, now, limit)]

    def age(self, expires: int, now: int) -> float:
        """Seconds since a message was sent: every entry is written with
        its expiry, EXPIRY after it was sent (or requeued), so the send
        time costs the format nothing."""
        return (now - expires + self.layout.expiry_ms) / 1000

    def _opened(self, entries: list[bytes], now: int, limit: int) -> list[tuple[int, str, bytes]]:
        opened = [item for entry in entries for item in open_entry(entry, now)]
        if len(opened) > limit:
            with self._lock:
                for item in opened[limit:]:
                    self._waiting[inbox_of(item[1])].append(item)
            del opened[limit:]
        return opened

    def waiting(self, plan: ReceivePlan, limit: int) -> list[Message]:
        """Up to ``limit`` members' messages waiting from the plan's
        inboxes."""
        return [(channel, data) for _, channel, data in self._take_waiting(plan, limit)[1]]

    def waiting_aged(self, plan: ReceivePlan, limit: int) -> list[AgedMessage]:
        """``waiting``, with each message's age (see ``age``)."""
        now, taken = self._take_waiting(plan, limit)
        return [(channel, data, self.age(expires, now)) for expires, channel, data in taken]

    def _take_waiting(self, plan: ReceivePlan,
                      limit: int) -> tuple[int, list[tuple[int, str, bytes]]]:
        if not self._waiting or not plan.inboxes:
            return 0, []
        now, taken = now_ms(), []
        with self._lock:
            for inbox in plan.inboxes:
                waiting = self._waiting.get(inbox)
                while waiting and len(taken) < limit:
                    item = waiting.popleft()
                    if item[0] > now:
                        taken.append(item)
                if waiting is not None and not waiting:
                    del self._waiting[inbox]
        return now, taken

    def clear(self) -> None:
        """Drop the members' messages waiting (``flush``)."""
        with self._lock:
            self._waiting.clear()
