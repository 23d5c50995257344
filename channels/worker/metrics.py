"""The worker's Prometheus metrics (docs/operations.rst), and their
``/metrics`` for ``runworker --metrics`` (``CHANNELS_WORKER_METRICS``).

Off unless ``enable()`` was called: then ``active`` holds them, and each
routed channel's children (its label bound once) are kept, so that a
message costs a dictionary look-up and three updates. The ``channel``
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
from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric

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


class ChannelMetrics:
    """One channel's children."""

    __slots__ = ("ok", "error", "duration", "age")

    def __init__(self, parent: WorkerMetrics, channel: str):
        self.ok = parent.messages.labels(channel=channel, outcome="ok")
        self.error = parent.messages.labels(channel=channel, outcome="error")
        self.duration = parent.duration.labels(channel=channel)
        self.age = parent.age.labels(channel=channel)


class WorkerMetrics:
    """The metrics of one process's workers."""

    def __init__(self, registry: Any):
        self.messages = Counter("channels_worker_messages", "Messages whose consumer ran, by "
                                "channel and outcome (error: it raised).",
                                ["channel", "outcome"], registry=registry)
        self.duration = Histogram("channels_consumer_duration_seconds", "How long consumers "
                                  "ran, by channel.", ["channel"], buckets=DURATION_BUCKETS,
                                  registry=registry)
        self.age = Histogram("channels_message_age_seconds", "From a message's send to a "
                             "worker taking it, by channel: the queueing delay.",
                             ["channel"], buckets=AGE_BUCKETS, registry=registry)
        self._channels: dict[str, ChannelMetrics] = {}
        self._lock = threading.Lock()

    def channel(self, name: str) -> ChannelMetrics:
        """The children of routed channel ``name``."""
        found = self._channels.get(name)
        if found is None:
            with self._lock:
                found = self._channels.get(name)
                if found is None:
                    found = self._channels[name] = ChannelMetrics(self, name)
        return found


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
            active = WorkerMetrics(metrics.registry())
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
