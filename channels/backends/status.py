"""The introspection part of the backend contract (``Introspection``, which
``BaseChannelBackend`` inherits): what a backend says of its store, for
``manage.py channels_status`` and the status page (``channels.status``),
and for the Prometheus metrics (``shard_states``, ``queue_depths``, read on
each scrape). Plain dataclasses, so that both print them and turn them
into JSON the same way (``as_dict``)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any

from channels.names import validate_name


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


class Introspection:
    """The introspection methods of ``BaseChannelBackend``; a backend
    implements ``_status`` and overrides what else it can tell."""

    def status(self, channels: Iterable[str] = ()) -> BackendStatus:
        """What the store holds now, for operators (``channels_status``, the
        status page): each shard up or down, every normal channel holding
        messages and each of ``channels`` (even empty), the groups. Never
        raises for a shard that is down: it is reported down."""
        shards, found = self._status({validate_name(name) for name in channels})
        return BackendStatus.of(self, shards, found)

    def _status(self, channels: set[str]) -> tuple[list[ShardStatus], list[ChannelStatus]]:
        """The shards, and the normal channels (``channels`` among them)
        sorted by name."""
        raise NotImplementedError

    def shard_states(self) -> list[tuple[str, bool, int]]:
        """``(address, up, failed calls so far)`` of each server, as the
        backend's own calls found it (the ``channels_redis_*`` metrics):
        no call is made, unlike ``status``."""
        return []

    def queue_depths(self, channels: Sequence[str]) -> dict[str, int]:
        """How many messages wait now on each of ``channels`` (normal
        channels, such as a worker's); a channel left out is not known
        (the ``channels_queue_depth`` metric, asked on every scrape: a
        few commands, where ``status`` scans every key).
        """
        return {}
