"""The metrics' parts in this process: addresses and their checks, bounded
labels, the histograms kept without locks as Prometheus reads them, message
ages and queue depths from the real backends (Redis on throwaway servers),
and the documented rules naming only metrics that exist. The processes
that serve them are in test_metrics_processes."""

import os
import re

import yaml
from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from channels.backends.memory import InMemoryChannelBackend
from channels.backends.redis.layout import Layout
from channels.backends.redis.receiving import Receiving
from channels.backends.redis.sharding import Placement
from channels.checks import check_metrics_settings, check_server_settings
from channels.interfaces.metrics import InterfaceMetrics, close_code_label, status_label
from channels.metrics import Histogram, ShardCollector, address_problem, parse_address
from channels.worker.metrics import QueueDepths, WorkerMetrics
from tests.support.redis_tests import RedisTestCase

EXAMPLES = os.path.join(os.path.dirname(__file__), "docs_examples", "deploy")


def exposed(*collectors) -> dict:
    """``{(sample name, labels): value}`` of ``collectors`` as a scrape
    shows them: rendered by prometheus_client and parsed back."""
    registry = CollectorRegistry()
    for collector in collectors:
        registry.register(collector)
    text = generate_latest(registry).decode()
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def at(samples: dict, name: str, **labels) -> float:
    return samples[name, frozenset(labels.items())]


class AddressTests(SimpleTestCase):
    def test_addresses(self):
        self.assertEqual(parse_address("9101"), ("127.0.0.1", 9101))
        self.assertEqual(parse_address("0.0.0.0:9101"), ("0.0.0.0", 9101))
        self.assertEqual(parse_address("[::1]:9101"), ("::1", 9101))
        self.assertEqual(parse_address("metrics.internal:9101"), ("metrics.internal", 9101))
        for bad in ("", "host", "host:", ":9101x", "1.2.3.4:99999", 9101, None):
            with self.subTest(bad=bad):
                self.assertIsNotNone(address_problem(bad))
                with self.assertRaises(ValueError):
                    parse_address(bad)

    @override_settings(CHANNELS_SERVER={"METRICS": "localhost"})
    def test_server_setting_checked(self):
        errors = check_server_settings()
        self.assertEqual([error.id for error in errors], ["channels.E004"])
        self.assertIn("CHANNELS_SERVER['METRICS']", errors[0].msg)

    @override_settings(CHANNELS_SERVER={"METRICS": "127.0.0.1:9101"})
    def test_server_setting_accepted(self):
        self.assertEqual(check_server_settings(), [])

    def test_worker_setting_checked(self):
        with override_settings(CHANNELS_WORKER_METRICS="127.0.0.1:port"):
            errors = check_metrics_settings()
            self.assertEqual([error.id for error in errors], ["channels.E006"])
            self.assertIn("CHANNELS_WORKER_METRICS", errors[0].msg)
        with override_settings(CHANNELS_WORKER_METRICS="127.0.0.1:9102"):
            self.assertEqual(check_metrics_settings(), [])
        self.assertEqual(check_metrics_settings(), [])  # unset: no metrics

    def test_runworker_refuses_a_bad_address(self):
        with self.assertRaisesMessage(CommandError, "Metrics address"):
            call_command("runworker", metrics="nowhere:")


class LabelTests(SimpleTestCase):
    def test_statuses_bounded(self):
        self.assertEqual([status_label(s) for s in (101, 200, 599, 99, 600, 7777)],
                         ["101", "200", "599", "other", "other", "other"])

    def test_close_codes_bounded(self):
        self.assertEqual([close_code_label(c) for c in (1000, 1006, 1015, 1016, 2999, 3000,
                                                        3999, 4000, 4999, 5000, 0)],
                         ["1000", "1006", "1015", "other", "other", "3xxx", "3xxx", "4xxx",
                          "4xxx", "other", "other"])

    def test_interface_counts_as_scraped(self):
        metrics = InterfaceMetrics()
        for status in (200, 200, 404, 1000):
            metrics.responses[status] += 1
        for code in (1000, 4001, 4999, 3001):
            metrics.closes[code] += 1
        metrics.websocket_in += 3
        metrics.send_full += 2
        metrics.request_duration.observe(0.003)
        samples = exposed(metrics)
        self.assertEqual(at(samples, "channels_http_responses_total", status="200"), 2)
        self.assertEqual(at(samples, "channels_http_responses_total", status="other"), 1)
        self.assertEqual(at(samples, "channels_websocket_closes_total", code="4xxx"), 2)
        self.assertEqual(at(samples, "channels_websocket_closes_total", code="3xxx"), 1)
        self.assertEqual(at(samples, "channels_websocket_messages_total", direction="in"), 3)
        self.assertEqual(at(samples, "channels_websocket_messages_total", direction="out"), 0)
        self.assertEqual(at(samples, "channels_layer_send_failures_total", reason="full"), 2)
        self.assertEqual(at(samples, "channels_connections", protocol="websocket"), 0)
        self.assertEqual(at(samples, "channels_http_request_duration_seconds_count"), 1)


class HistogramTests(SimpleTestCase):
    def test_buckets_cumulative_with_prometheus_le(self):
        metrics = WorkerMetrics()
        first, second = metrics.new_worker(), metrics.new_worker()
        for value in (0.0005, 0.0007, 2.0, 100.0):  # 0.0005 is on a bound: le includes it
            first.channel("http.request").age.observe(value)
        second.channel("http.request").age.observe(0.0001)
        first.channel("http.request").ok += 2
        second.channel("http.request").error += 1
        samples = exposed(metrics)

        def bucket(le):
            return at(samples, "channels_message_age_seconds_bucket", channel="http.request",
                      le=le)
        self.assertEqual(bucket("0.0005"), 2)
        self.assertEqual(bucket("0.001"), 3)
        self.assertEqual(bucket("2.5"), 4)
        self.assertEqual(bucket("60.0"), 4)
        self.assertEqual(bucket("+Inf"), 5)
        self.assertEqual(at(samples, "channels_message_age_seconds_count",
                            channel="http.request"), 5)
        self.assertAlmostEqual(at(samples, "channels_message_age_seconds_sum",
                                  channel="http.request"), 102.0013)
        self.assertEqual(at(samples, "channels_worker_messages_total", channel="http.request",
                            outcome="ok"), 2)
        self.assertEqual(at(samples, "channels_worker_messages_total", channel="http.request",
                            outcome="error"), 1)

    def test_one_histogram(self):
        histogram = Histogram((1.0, 2.0))
        for value in (0.5, 1.5, 1.5, 3.0):
            histogram.observe(value)
        self.assertEqual(histogram.counts, [1, 2, 1])
        self.assertEqual(histogram.sum, 6.5)


class MessageAgeTests(SimpleTestCase):
    def test_age_from_the_expiry_written_at_send(self):
        layout = Layout("p:", 60, Placement(1), lambda channel: 10)
        receiving = Receiving(layout, 1)
        sent = 1_000_000
        entry = layout.entry("q", b"data", sent)
        self.assertEqual(receiving.deliver_aged([entry], sent + 1500, 10), [("q", b"data", 1.5)])
        self.assertEqual(receiving.deliver([entry], sent + 1500, 10), [("q", b"data")])

    def test_memory_backend(self):
        backend = InMemoryChannelBackend(expiry=60)
        backend.send("q", {"n": 1})
        backend.send("q", {"n": 2})
        self.assertEqual(backend.queue_depths(["q", "other"]), {"q": 2, "other": 0})
        batch = backend.receive_batch_aged(["q"], 10, 0)
        self.assertEqual([(channel, content) for channel, content, _ in batch],
                         [("q", {"n": 1}), ("q", {"n": 2})])
        for _, _, age in batch:
            self.assertGreaterEqual(age, 0)
            self.assertLess(age, 60)
        self.assertEqual(backend.receive_batch_aged(["q"], 10, 0), [])


class RedisMessageAgeTests(RedisTestCase):
    shards = 2

    def test_ages_and_depths(self):
        backend = self.make_backend()
        for n in range(5):
            backend.send("q", {"n": n})  # a normal channel: spread over both shards
        self.assertEqual(backend.queue_depths(["q", "empty"]), {"q": 5, "empty": 0})
        taken = []
        while len(taken) < 5:
            taken += backend.receive_batch_aged(["q"], 10, 5)
        self.assertEqual(sorted(content["n"] for _, content, _ in taken), list(range(5)))
        for _, _, age in taken:
            self.assertGreaterEqual(age, 0)
            self.assertLess(age, backend.expiry)
        self.assertEqual(backend.queue_depths(["q"]), {"q": 0})

    def test_shard_states(self):
        backend = self.make_backend()
        backend.send("q", {})
        labels = [f"127.0.0.1:{server.port}" for server in self.servers]
        self.assertEqual(backend.shard_states(), [(label, True, 0) for label in labels])
        collector = ShardCollector()
        collector.backends.append(backend)
        samples = exposed(collector)
        for label in labels:
            self.assertEqual(at(samples, "channels_redis_up", shard=label), 1)
            self.assertEqual(at(samples, "channels_redis_command_failures_total", shard=label), 0)


class DocumentedRulesTests(SimpleTestCase):
    def test_rules_name_only_metrics_that_exist(self):
        with open(os.path.join(EXAMPLES, "channels-alerts.yml")) as file:
            rules = yaml.safe_load(file)
        alerts = [rule for group in rules["groups"] for rule in group["rules"]]
        self.assertEqual([rule["alert"] for rule in alerts],
                         ["ChannelsQueueGrowing", "ChannelsNoLiveWorker",
                          "ChannelsRedisShardDown", "ChannelsMessageAgeHigh"])
        backend = InMemoryChannelBackend()
        queues = QueueDepths()
        queues.watched.append((backend, ["http.request"]))
        workers = WorkerMetrics()
        workers.new_worker().channel("http.request").ok += 1
        shards = ShardCollector()
        shards.backends.append(_OneShard())
        names = {name for name, _ in exposed(InterfaceMetrics(), workers, queues, shards)}
        for rule in alerts:
            for name in re.findall(r"\bchannels_\w+", rule["expr"]):
                with self.subTest(alert=rule["alert"], name=name):
                    self.assertTrue(name in names or f"{name}_total" in names, name)

    def test_scrape_config_loads_the_rules(self):
        with open(os.path.join(EXAMPLES, "prometheus.yml")) as file:
            config = yaml.safe_load(file)
        self.assertEqual(config["rule_files"], ["channels-alerts.yml"])
        self.assertEqual([job["job_name"] for job in config["scrape_configs"]],
                         ["channels-wsserver", "channels-worker"])


class _OneShard:
    """A backend's shard states as a Redis backend reports them."""

    def shard_states(self):
        return [("127.0.0.1:6379", False, 3)]
