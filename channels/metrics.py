"""What both sides' Prometheus metrics share: the process's registry, the
``HOST:PORT`` they are served on, and the channel backend's view of its
Redis shards (docs/operations.rst).

The interface server's metrics are in ``channels.interfaces.metrics``, the
worker's in ``channels.worker.metrics``; this module imports neither, so
that the worker side never loads the interface server. Every process has
one registry, prometheus_client's default: a ``runserver`` that runs both
sides serves both sets on one address, with the process's own
(``process_*``, ``python_*``).
"""

from __future__ import annotations

import re
import threading
from bisect import bisect_left
from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

ADDRESS = re.compile(r"^(?:(?P<host>\[[0-9a-fA-F:.]+\]|[^:\[\]]+):)?(?P<port>\d+)$")
DEFAULT_HOST = "127.0.0.1"


def registry() -> CollectorRegistry:
    """The process's one registry."""
    return REGISTRY


def parse_address(value: str) -> tuple[str, int]:
    """``(host, port)`` of ``"HOST:PORT"``, ``"[::1]:PORT"`` or ``"PORT"``
    (on 127.0.0.1: metrics are for the monitoring system, not the world).
    Raises ValueError saying what is wrong."""
    problem = address_problem(value)
    if problem is not None:
        raise ValueError(problem)
    match = ADDRESS.match(value)
    return (match["host"] or DEFAULT_HOST).strip("[]"), int(match["port"])


def address_problem(value: object) -> str | None:
    """Why ``value`` is not a metrics address, or None."""
    match = ADDRESS.match(value) if isinstance(value, str) else None
    if match is None:
        return f"{value!r} is not HOST:PORT or PORT (such as '127.0.0.1:9101')"
    if not 0 <= int(match["port"]) <= 65535:
        return f"{value!r} has a port out of range"
    return None


class ShardCollector:
    """``channels_redis_up{shard}`` and
    ``channels_redis_command_failures_total{shard}``, read on each scrape
    from the backends' own state (``BaseChannelBackend.shard_states``),
    which their calls keep where they find an outage: nothing is counted
    on the way of a message."""

    def __init__(self) -> None:
        self.backends: list[BaseChannelBackend] = []

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "channels_redis_up", "1 while the channel backend's calls reach the Redis "
            "shard, 0 from a failed call until one succeeds again.", labels=["shard"])
        failures = CounterMetricFamily(
            "channels_redis_command_failures", "Commands to the Redis shard that failed "
            "(unreachable, timed out or refused).", labels=["shard"])
        for backend in list(self.backends):
            for name, reachable, failed in backend.shard_states():
                up.add_metric([name], 1 if reachable else 0)
                failures.add_metric([name], failed)
        yield up
        yield failures


class Histogram:
    """A histogram's counts, kept by one thread (the reactor, or one
    worker) and read by a scrape: an observation is a bisect and two
    additions, where prometheus_client's own takes a lock per call, which
    at a few microseconds is several percent of a WebSocket echo's CPU
    (docs/benchmarks.rst). Exposed through ``family``."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]):
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound (+Inf)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    def add_to(self, family: HistogramMetricFamily, labels: list[str]) -> None:
        """Add these counts to ``family`` as its sample for ``labels``."""
        add_histogram(family, labels, self.bounds, self.counts, self.sum)


def add_histogram(family: HistogramMetricFamily, labels: list[str], bounds: tuple[float, ...],
                  counts: list[int], total: float) -> None:
    """``counts`` per bucket (see Histogram) as cumulative ``le`` buckets."""
    running, buckets = 0, []
    for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), counts, strict=True):
        running += count
        buckets.append((bound, running))
    family.add_metric(labels, buckets, total)


def merged(histograms: list[Histogram]) -> tuple[list[int], float]:
    """The counts and sum of several histograms with the same bounds."""
    counts = [sum(column) for column in zip(*(h.counts for h in histograms), strict=True)]
    return counts, sum(h.sum for h in histograms)


_shards: ShardCollector | None = None
_shards_lock = threading.Lock()


def watch_shards(backend: BaseChannelBackend) -> None:
    """Report ``backend``'s shards in the process's registry (once)."""
    global _shards
    with _shards_lock:
        if _shards is None:
            _shards = ShardCollector()
            registry().register(_shards)
        if backend not in _shards.backends:
            _shards.backends.append(backend)
