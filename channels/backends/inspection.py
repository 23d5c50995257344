"""What a backend tells monitoring about itself (the Prometheus metrics of
``channels.metrics`` and ``channels.worker.metrics``): a part of the
backend contract that no message goes through, read when scraped."""

from __future__ import annotations

from collections.abc import Sequence


class Inspection:
    """Defaults for a backend that can tell nothing; ``BaseChannelBackend``
    inherits them, and a backend overrides what it knows."""

    def shard_states(self) -> list[tuple[str, bool, int]]:
        """``(address, up, failed calls so far)`` of each server, as the
        backend's own calls found it (the ``channels_redis_*`` metrics)."""
        return []

    def queue_depths(self, channels: Sequence[str]) -> dict[str, int]:
        """How many messages wait now on each of ``channels`` (normal
        channels, such as a worker's); a channel left out is not known
        (the ``channels_queue_depth`` metric)."""
        return {}
