"""The worker's Prometheus metrics (docs/operations.rst), and their
``/metrics`` for ``runworker --metrics`` (``CHANNELS_WORKER_METRICS``).

Off unless ``enable()`` was called: then ``active`` holds them, and each
worker keeps its own figures per channel (``WorkerStats``), summed when
scraped, so that a message costs a dictionary look-up and a few
additions. The ``channel``
label is the channel a worker listens on, a routed name such as
``http.request``: never a reply channel, so the label set stays that of
the routing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django.conf import settings
from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from channels import metrics

if TYPE_CHECKING:
    from channels.backends.base import BaseChannelBackend

logger = logging.getLogger("channels.worker")

SETTING = "CHANNELS_WORKER_METRICS"

# A consumer's run: from a cache hit's fraction of a millisecond to a
# report that takes a minute.
DURATION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                    5.0, 10.0, 30.0, 60.0)
# Send to take: next to nothing while workers keep up, up to the channel's
# EXPIRY (60 s) when they do not.
AGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
               10.0, 30.0, 60.0)


class ChannelStats:
    """One channel's figures in one worker."""

    __slots__ = ("ok", "error", "duration", "age")

    def __init__(self) -> None:
        self.ok = 0
        self.error = 0
        self.duration = metrics.Histogram(DURATION_BUCKETS)
        self.age = metrics.Histogram(AGE_BUCKETS)


class WorkerStats:
    """The figures of one ``Worker``, which only its thread changes: a
    message costs a dictionary look-up and a few additions, and no lock
    (prometheus_client's own metrics take one per update)."""

    __slots__ = ("channels",)

    def __init__(self) -> None:
        self.channels: dict[str, ChannelStats] = {}

    def channel(self, name: str) -> ChannelStats:
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = ChannelStats()
        return found


class WorkerMetrics:
    """The metrics of one process's workers, summed over their
    ``WorkerStats`` when scraped (a stopped worker's stay counted)."""

    def __init__(self) -> None:
        self.workers: list[WorkerStats] = []
        # Worker loops running now: the consumers the process runs at once.
        self.loops = 0
        self._lock = threading.Lock()

    def loop_started(self) -> None:
        with self._lock:
            self.loops += 1

    def loop_stopped(self) -> None:
        with self._lock:
            self.loops -= 1

    def new_worker(self) -> WorkerStats:
        stats = WorkerStats()
        with self._lock:
            self.workers.append(stats)
        return stats

    def collect(self) -> Iterator[Metric]:
        by_channel: dict[str, list[ChannelStats]] = {}
        with self._lock:
            workers = list(self.workers)
        for worker in workers:
            for name, stats in list(worker.channels.items()):
                by_channel.setdefault(name, []).append(stats)
        messages = CounterMetricFamily("channels_worker_messages", "Messages whose consumer "
                                       "ran, by channel and outcome (error: it raised).",
                                       labels=["channel", "outcome"])
        duration = HistogramMetricFamily("channels_consumer_duration_seconds", "How long "
                                         "consumers ran, by channel.", labels=["channel"])
        age = HistogramMetricFamily("channels_message_age_seconds", "From a message's send to "
                                    "a worker taking it, by channel: the queueing delay.",
                                    labels=["channel"])
        for name, found in sorted(by_channel.items()):
            messages.add_metric([name, "ok"], sum(stats.ok for stats in found))
            messages.add_metric([name, "error"], sum(stats.error for stats in found))
            metrics.add_histogram(duration, [name], DURATION_BUCKETS,
                                  *metrics.merged([stats.duration for stats in found]))
            metrics.add_histogram(age, [name], AGE_BUCKETS,
                                  *metrics.merged([stats.age for stats in found]))
        yield messages
        yield duration
        yield age
        yield GaugeMetricFamily("channels_worker_threads", "Consumers this process runs at "
                                "once: its worker loops (runworker --threads, runserver's "
                                "worker threads).", value=self.loops)


class QueueDepths:
    """``channels_queue_depth{channel}``: asked of the backend on each
    scrape, for the channels the process's workers consume. Every worker
    of a site reports the same lines: aggregate with ``max``."""

    def __init__(self) -> None:
        self.watched: list[tuple[BaseChannelBackend, list[str]]] = []

    def collect(self) -> Iterator[Metric]:
        depth = GaugeMetricFamily("channels_queue_depth", "Messages waiting on a channel "
                                  "that this process's workers consume.", labels=["channel"])
        seen = set()
        for backend, channels in list(self.watched):
            try:
                depths = backend.queue_depths(channels)
            except Exception:  # a scrape must not fail for one backend
                logger.warning("Could not read queue depths of backend %r", backend.alias,
                               exc_info=True)
                continue
            for channel, waiting in depths.items():
                if channel not in seen:
                    seen.add(channel)
                    depth.add_metric([channel], waiting)
        yield depth


# The process's metrics once enabled, else None.
active: WorkerMetrics | None = None
_enable_lock = threading.Lock()
_queues: QueueDepths | None = None


def enable() -> WorkerMetrics:
    """Start counting (once per process), in the process's registry."""
    global active
    with _enable_lock:
        if active is None:
            active = WorkerMetrics()
            metrics.registry().register(active)
    return active


def watch_queues(backend: BaseChannelBackend, channels: list[str]) -> None:
    """Report the depths of ``channels`` on ``backend`` (see QueueDepths)."""
    global _queues
    with _enable_lock:
        if _queues is None:
            _queues = QueueDepths()
            metrics.registry().register(_queues)
        _queues.watched.append((backend, list(channels)))


def configured_address() -> str | None:
    """``CHANNELS_WORKER_METRICS``: where ``runworker`` serves metrics."""
    return getattr(settings, SETTING, None)


def serve(address: str) -> Any:
    """Serve the process's registry at ``address`` (``HOST:PORT``) in a
    daemon thread, the worker's main thread being busy with consumers;
    returns the HTTP server (``server_address``, ``shutdown()``)."""
    host, port = metrics.parse_address(address)
    server, _ = start_http_server(port, addr=host, registry=metrics.registry())
    return server
