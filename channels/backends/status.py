"""The introspection part of the backend contract (``BaseChannelBackend.status``):
what a backend says of its store, for ``manage.py channels_status`` and the
status page (``channels.status``). Plain dataclasses, so that both print
them and turn them into JSON the same way (``as_dict``)."""

from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass
class ShardStatus:
    """One server of the store (the in-memory backend has one: its process).

    ``used_memory`` is in bytes and ``round_trip`` in seconds, None where
    the store has no such figure or the shard is down; ``error`` says why
    a shard is down. ``groups`` counts the groups whose home is this
    shard, ``replies_waiting`` the messages waiting in its response
    channels (those of every client together: they are too many to list).
    """

    address: str
    up: bool
    error: str | None = None
    used_memory: int | None = None
    round_trip: float | None = None
    groups: int | None = None
    replies_waiting: int | None = None


@dataclasses.dataclass
class ChannelStatus:
    """A normal channel: ``depth`` holds the messages waiting on each shard,
    in the order of ``BackendStatus.shards`` (None where the shard is down);
    ``capacity`` is its capacity on one shard."""

    name: str
    depth: list[int | None]
    capacity: int

    @property
    def total(self) -> int:
        return sum(depth for depth in self.depth if depth is not None)


@dataclasses.dataclass
class BackendStatus:
    alias: str
    backend: str
    local_only: bool
    shards: list[ShardStatus]
    channels: list[ChannelStatus]

    @classmethod
    def of(cls, backend: Any, shards: list[ShardStatus],
           channels: list[ChannelStatus]) -> BackendStatus:
        """The status of ``backend`` (a BaseChannelBackend)."""
        return cls(backend.alias, f"{type(backend).__module__}.{type(backend).__name__}",
                   backend.local_only, shards, channels)

    @property
    def groups(self) -> int | None:
        counts = [shard.groups for shard in self.shards if shard.groups is not None]
        return sum(counts) if counts else None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: every field, with each channel's ``total`` and the
        ``groups`` of every shard that answered."""
        return {
            "alias": self.alias,
            "backend": self.backend,
            "local_only": self.local_only,
            "shards": [dataclasses.asdict(shard) for shard in self.shards],
            "channels": [{**dataclasses.asdict(channel), "total": channel.total}
                         for channel in self.channels],
            "groups": self.groups,
        }
