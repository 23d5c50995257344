"""The interface server's Prometheus metrics (docs/operations.rst), and
``/metrics`` served from its reactor on an address of their own.

Off unless ``enable()`` was called (``runwsserver --metrics``,
``CHANNELS_SERVER['METRICS']``): then ``active`` holds the metrics, and
the code on a request's or a message's way checks it once and adds to a
plain number: labels are applied when scraped, never per message.
Connection counts are read from the servers on each scrape.
"""

from __future__ import annotations

import collections
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from twisted.web.resource import Resource
from twisted.web.server import Site

from channels import metrics

if TYPE_CHECKING:
    from channels.interfaces.server import ChannelServer

# Request in to response start: from a static file's fraction of a
# millisecond to HTTP_TIMEOUT (60 s).
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                    10.0, 30.0, 60.0)
# One batch to the layer and its answer.
ROUND_TRIP_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                      0.25, 0.5, 1.0, 5.0)


def status_label(status: int) -> str:
    """The ``status`` label: a real status code, or ``other``, so that an
    application sending odd numbers cannot grow the label set."""
    return str(status) if 100 <= status <= 599 else "other"


def close_code_label(code: int) -> str:
    """The ``code`` label: RFC 6455's codes as they are; those applications
    and libraries choose (3000-4999) by range, so that clients cannot grow
    the label set."""
    if 3000 <= code <= 3999:
        return "3xxx"
    if 4000 <= code <= 4999:
        return "4xxx"
    return str(code) if 1000 <= code <= 1015 else "other"


class InterfaceMetrics:
    """The metrics of one process's interface servers: plain numbers that
    only the reactor thread changes and reads (a scrape renders on it
    too), exported by ``collect`` in prometheus_client's families."""

    def __init__(self) -> None:
        self.servers: weakref.WeakSet[ChannelServer] = weakref.WeakSet()
        self.responses: collections.Counter[int] = collections.Counter()
        self.request_duration = metrics.Histogram(DURATION_BUCKETS)
        self.websocket_in = 0
        self.websocket_out = 0
        self.closes: collections.Counter[int] = collections.Counter()
        self.send_full = 0
        self.send_unavailable = 0
        self.round_trip = metrics.Histogram(ROUND_TRIP_BUCKETS)

    def collect(self) -> Iterator[Metric]:
        connections = GaugeMetricFamily(
            "channels_connections", "Open connections, by protocol (an HTTP connection "
            "counts as websocket once upgraded).", labels=["protocol"])
        servers = list(self.servers)
        connections.add_metric(["http"], sum(len(s.http_connections) for s in servers))
        connections.add_metric(["websocket"], sum(len(s.websockets) for s in servers))
        yield connections
        yield _by_label("channels_http_responses", "HTTP responses sent, by status "
                        "(WebSocket handshakes included: 101 or their refusal).", "status",
                        self.responses, status_label)
        duration = HistogramMetricFamily(
            "channels_http_request_duration_seconds", "From a request's head read to its "
            "response's start (a worker's, the server's own error, or a static file).")
        self.request_duration.add_to(duration, [])
        yield duration
        messages = CounterMetricFamily("channels_websocket_messages", "WebSocket messages, "
                                       "in: from clients to the layer, out: to clients.",
                                       labels=["direction"])
        messages.add_metric(["in"], self.websocket_in)
        messages.add_metric(["out"], self.websocket_out)
        yield messages
        yield _by_label("channels_websocket_closes", "Open WebSockets closed, by close code "
                        "(1006: dropped without a close frame).", "code", self.closes,
                        close_code_label)
        failures = CounterMetricFamily("channels_layer_send_failures", "Messages the layer "
                                       "did not take: full (its channel at capacity) or "
                                       "unavailable (backend down).", labels=["reason"])
        failures.add_metric(["full"], self.send_full)
        failures.add_metric(["unavailable"], self.send_unavailable)
        yield failures
        round_trip = HistogramMetricFamily("channels_layer_round_trip_seconds", "From a batch "
                                           "of messages handed to the layer to its answer.")
        self.round_trip.add_to(round_trip, [])
        yield round_trip


def _by_label(name: str, documentation: str, label: str, counts: collections.Counter,
              label_of: Callable[[int], str]) -> CounterMetricFamily:
    """A counter family from raw values (statuses, codes) to their bounded labels."""
    totals: collections.Counter[str] = collections.Counter()
    for raw, count in list(counts.items()):
        totals[label_of(raw)] += count
    family = CounterMetricFamily(name, documentation, labels=[label])
    for shown, count in sorted(totals.items()):
        family.add_metric([shown], count)
    return family


# The process's metrics once enabled, else None.
active: InterfaceMetrics | None = None


def enable() -> InterfaceMetrics:
    """Start counting (once per process), in the process's registry."""
    global active
    if active is None:
        active = InterfaceMetrics()
        metrics.registry().register(active)
    return active


def watch(server: ChannelServer) -> None:
    """Count ``server``'s connections and its backend's shards."""
    enabled = enable()
    enabled.servers.add(server)
    metrics.watch_shards(server.backend)


class MetricsPage(Resource):
    """The registry in Prometheus's text format, rendered on the reactor (a
    scrape takes a millisecond or so; no thread is needed for it)."""

    isLeaf = True

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode())
        return generate_latest(metrics.registry())


def start(server: ChannelServer) -> Any | None:
    """With ``server``'s METRICS option: count its metrics and serve them
    on its reactor at that address; returns the listening port, else None."""
    if not server.config.metrics:
        return None
    watch(server)
    return serve(server.reactor, server.config.metrics)


def url(listening: Any) -> str:
    """The metrics page of a port that ``start`` or ``serve`` opened."""
    host = listening.getHost()
    shown = f"[{host.host}]" if ":" in host.host else host.host
    return f"http://{shown}:{host.port}/metrics"


def serve(reactor: Any, address: str) -> Any:
    """Listen on ``address`` (``HOST:PORT``) with ``/metrics`` and nothing
    else; returns the listening port."""
    host, port = metrics.parse_address(address)
    root = Resource()
    root.putChild(b"metrics", MetricsPage())
    site = Site(root)
    site.noisy = False
    site.log = lambda request: None  # Prometheus scrapes every few seconds
    return reactor.listenTCP(port, site, interface=host)
