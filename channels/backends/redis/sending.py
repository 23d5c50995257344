"""How a batch of messages reaches the shards, with no I/O: the blocking
client (``backend.py``) drives a ``SendPlan`` call by call, the reactor
client (``reactor.py``) with Deferreds, so both keep the same rule.

The rule: one SEND_MANY script call per shard for the whole batch. A
message with a home shard (rules 1 and 2 of sharding.py) goes there and
nowhere else. The messages of normal channels (rule 3) all go with those of
the next live shard in turn, in order; only the ones it finds full or
cannot take try the other live shards, one after the other, all of them in
one call per shard. A normal channel's message is refused as full if a
shard answered for it, and unreachable if none did.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

from channels import process
from channels.backends.redis.layout import Layout, now_ms
from channels.exceptions import ChannelBackendUnavailable, ChannelFull

if TYPE_CHECKING:
    from channels.backends.redis.shard import Shard


class Spread:
    """Rule 3 over time: the shards the next normal channel's message may
    go to, the next in turn first and those known to be down left out."""

    def __init__(self, shards: int):
        self._turn = itertools.count(process.random().randrange(shards))

    def __call__(self, shards: list[Shard], messages: int = 1) -> list[Shard]:
        """Raises the outage of the shard in turn if none is live, counting
        the ``messages`` it costs there (``Shard.lost``)."""
        start = next(self._turn) % len(shards)
        ordered = shards[start:] + shards[:start]
        live = [shard for shard in ordered if shard.available]
        if not live:
            ordered[0].lost(messages)
            raise ordered[0].unavailable()
        return live


class SendPlan:
    """One batch on its way. Positions are indexes into the batch.

    Drive it so: make every call of ``calls`` (a shard and the positions it
    gets), reporting each with ``answered`` or ``failed``; then, while
    ``retry()`` gives a call, make it and report it likewise. ``failures``
    then holds ``(position, ChannelFull or the outage)`` for every message
    not sent."""

    def __init__(self, layout: Layout, messages: Sequence[tuple[str, bytes]], spread: Spread,
                 shards: list[Shard]):
        self.now = now = now_ms()
        self.expiry_ms = layout.expiry_ms
        self.args: list[list] = []
        batches: dict[int, list[int]] = {}
        normal: list[int] = []
        send_args, args = layout.send_args, self.args
        for position, (channel, data) in enumerate(messages):
            index, message_args = send_args(channel, data, now)
            args.append(message_args)
            if index is None:
                normal.append(position)
            elif (batch := batches.get(index)) is None:
                batches[index] = [position]
            else:
                batch.append(position)
        self.failures: list[tuple[int, Exception]] = []
        self._shards = shards
        self._normal = set(normal)
        self._first: int | None = None  # the shard in turn
        self._others: list[int] = []  # then these
        self._left: list[int] = []  # normal positions still to send
        self._unreached: Exception | None = None
        self._retrying = False
        if normal:
            try:
                live = spread(shards, len(normal))
            except ChannelBackendUnavailable as exc:
                self.failures += [(position, exc) for position in normal]
            else:
                self._first = live[0].index
                batches.setdefault(self._first, []).extend(normal)
                self._others = [shard.index for shard in live[1:]]
        self.calls: list[tuple[int, list[int]]] = list(batches.items())

    def command(self, positions: list[int]) -> list:
        """ARGV of the SEND_MANY call for ``positions``."""
        flat = [self.now, self.expiry_ms]
        args = self.args
        for position in positions:
            flat += args[position]
        return flat

    def answered(self, index: int, positions: list[int], full: list[int]) -> None:
        """The shard ``index`` took ``positions`` but those numbered
        ``full`` (1-based, the script's answer)."""
        refused = [positions[number - 1] for number in full]
        if self._retrying:
            self._left, self._unreached = refused, None
            return
        for position in refused:
            if position in self._normal:
                self._left.append(position)
            else:
                self.failures.append((position, self._full(position)))

    def failed(self, index: int, positions: list[int], error: Exception) -> None:
        """The call to shard ``index`` for ``positions`` failed."""
        if self._retrying:
            if getattr(error, "maybe_taken", False):
                self._unreached, self._others = error, []  # no further shard
            return  # the next shard tries the same
        # Taken perhaps: never tried elsewhere, which could deliver twice.
        normal = () if getattr(error, "maybe_taken", False) else self._normal
        homed = 0
        for position in positions:
            if position in normal:
                self._left.append(position)
            else:
                self.failures.append((position, error))
                homed += 1
        if homed:
            self._shards[index].lost(homed)
        if index == self._first:
            self._unreached = error

    def retry(self) -> tuple[int, list[int]] | None:
        """The next call for normal channels' messages not sent yet, or None
        once there is none left to make."""
        self._retrying = True
        if self._left and self._others:
            return self._others.pop(0), self._left
        for position in self._left:
            self.failures.append((position, self._unreached or self._full(position)))
        if self._left and self._unreached is not None:
            self._shards[self._first].lost(len(self._left))
        self._left = []
        return None

    def refused(self) -> list[str]:
        """``send_many``'s answer: the channels of the messages refused as
        full, in batch order. Raises an outage that left any unsent."""
        full = []
        for position, error in sorted(self.failures, key=lambda failure: failure[0]):
            if not isinstance(error, ChannelFull):
                raise error
            full.append(self.args[position][3])
        return full

    def _full(self, position: int) -> ChannelFull:
        return ChannelFull(f"Channel {self.args[position][3]!r} is full")
