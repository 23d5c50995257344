"""Prometheus metrics of real processes: a runwsserver and a runworker with
``--metrics`` on free ports, on a throwaway Redis server of their own, driven
with HTTP and WebSocket clients; their ``/metrics`` scraped with an HTTP
client and parsed with prometheus_client's parser, and the Redis server
killed and started again under them."""

import json
import sys
import threading
import time

import requests
import websocket
from django.test import SimpleTestCase
from prometheus_client.parser import text_string_to_metric_families

from tests.support.processes import Process, django_env
from tests.support.redis_servers import RedisServer, backend_config
from tests.support.server_process import ServerProcess, free_port

ROUTING = "tests.interface_consumers.routing"
# Everything here waits for a condition; this is only how long before the
# test gives up on it.
DEADLINE = 60


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    """``{(sample name, labels): value}`` of a Prometheus text page."""
    response = requests.get(url, timeout=10)
    response.raise_for_status()
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(response.text)
            for sample in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


class Answer:
    """A GET made in a thread."""

    def __init__(self, url: str):
        self.response = None
        self.thread = threading.Thread(target=self.get, args=(url,), daemon=True)
        self.thread.start()

    def get(self, url: str) -> None:
        self.response = requests.get(url, timeout=DEADLINE)

    def result(self) -> requests.Response:
        self.thread.join(DEADLINE + 10)
        assert self.response is not None, "no response"
        return self.response


def wait_until(condition, what: str, timeout: float = DEADLINE):
    """Poll ``condition`` until it returns something true; fail after
    ``timeout`` seconds saying ``what`` was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"Not in {timeout} s: {what}")
        time.sleep(0.05)


class MetricsProcessTests(SimpleTestCase):
    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.cleanup)
        config = backend_config([self.redis], routing=ROUTING)
        env = django_env("tests.interface_redis_settings",
                         CHANNELS_TEST_BACKEND=json.dumps(config))
        self.worker_metrics = f"http://127.0.0.1:{free_port()}/metrics"
        # One message at a time: messages waiting behind a busy consumer
        # stay in their channel, where the queue depth counts them.
        self.worker = Process([sys.executable, "-m", "django", "runworker", "--prefetch", "1",
                               "--metrics", self.worker_metrics.split("/")[2]], env)
        self.addCleanup(self.worker.stop)
        self.worker.wait_for_line("listening on")
        self.server_metrics = f"http://127.0.0.1:{free_port()}/metrics"
        self.server = Process([sys.executable, "-m", "django", "runwsserver", "127.0.0.1:0",
                               "--metrics", self.server_metrics.split("/")[2]], env)
        self.addCleanup(self.server.stop)
        port = int(self.server.wait_for_line(r"http://127\.0\.0\.1:(\d+)/").group(1))
        self.server.wait_for_line(r"Metrics at http://127\.0\.0\.1:\d+/metrics")
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"
        # Until the server has read the worker's heartbeat it answers 503.
        wait_until(lambda: requests.get(self.url + "/ready/", timeout=10).status_code == 200,
                   "the server answers through the worker")

    def websocket(self, path: str) -> websocket.WebSocket:
        return websocket.create_connection(self.ws_url + path, timeout=30,
                                           origin=self.url)

    def test_http_and_websocket_traffic_is_counted(self):
        before = scrape(self.server_metrics)
        worker_before = scrape(self.worker_metrics)
        for _ in range(3):
            self.assertEqual(requests.get(self.url + "/", timeout=30).status_code, 200)
        self.assertEqual(requests.get(self.url + "/bad/", timeout=30).status_code, 500)
        # The public port has no metrics: /metrics there is the site's own page.
        public = requests.get(self.url + "/metrics", timeout=30)
        self.assertNotIn("channels_http_responses_total", public.text)
        self.assertNotIn("# TYPE", public.text)

        echo = self.websocket("/echo/")
        for text in ("one", "two", "three"):
            echo.send(text)
            self.assertEqual(echo.recv(), text)
        server = scrape(self.server_metrics)
        self.assertEqual(value(server, "channels_connections", protocol="websocket"), 1)
        echo.close()
        closing = self.websocket("/closeme/")
        closing.send("4001")
        self.assertEqual(closing.recv(), "bye")
        opcode, frame = closing.recv_data_frame(control_frame=True)
        self.assertEqual(opcode, websocket.ABNF.OPCODE_CLOSE)
        self.assertEqual(int.from_bytes(frame.data[:2], "big"), 4001)
        closing.close()
        with self.assertRaises(websocket.WebSocketBadStatusException):
            self.websocket("/fail/")  # its connect consumer raises

        def grown(samples, old, name, by, **labels):
            return value(samples, name, **labels) - value(old, name, **labels) >= by

        def server_counted():
            now = scrape(self.server_metrics)
            return all([
                grown(now, before, "channels_http_responses_total", 4, status="200"),
                grown(now, before, "channels_http_responses_total", 1, status="500"),
                grown(now, before, "channels_http_responses_total", 2, status="101"),
                grown(now, before, "channels_websocket_messages_total", 4, direction="in"),
                grown(now, before, "channels_websocket_messages_total", 4, direction="out"),
                grown(now, before, "channels_websocket_closes_total", 1, code="1000"),
                grown(now, before, "channels_websocket_closes_total", 1, code="4xxx"),
                grown(now, before, "channels_http_request_duration_seconds_count", 5),
                grown(now, before, "channels_layer_round_trip_seconds_count", 1),
            ]) and now
        now = wait_until(server_counted, "the server's counts")
        self.assertEqual(value(now, "channels_layer_send_failures_total", reason="full"), 0)
        self.assertEqual(value(now, "channels_redis_up", shard=self.redis_label), 1)
        self.assertEqual(value(now, "channels_connections", protocol="websocket"), 0)
        labels = {dict(key[1]).get("status") for key in now
                  if key[0] == "channels_http_responses_total"}
        self.assertTrue(labels <= {"101", "200", "403", "500", "503"}, labels)

        def worker_counted():
            now = scrape(self.worker_metrics)
            return all([
                grown(now, worker_before, "channels_worker_messages_total", 5,
                      channel="http.request", outcome="ok"),
                grown(now, worker_before, "channels_worker_messages_total", 1,
                      channel="websocket.connect", outcome="error"),
                grown(now, worker_before, "channels_worker_messages_total", 4,
                      channel="websocket.receive", outcome="ok"),
                grown(now, worker_before, "channels_consumer_duration_seconds_count", 5,
                      channel="http.request"),
                grown(now, worker_before, "channels_message_age_seconds_count", 5,
                      channel="http.request"),
            ]) and now
        worker = wait_until(worker_counted, "the worker's counts")
        channels = {dict(key[1]).get("channel") for key in worker
                    if key[0] == "channels_worker_messages_total"}
        self.assertFalse([name for name in channels if name.startswith("!")], channels)
        ages = value(worker, "channels_message_age_seconds_sum", channel="http.request")
        self.assertGreaterEqual(ages, 0)
        self.assertLess(ages, 60 * 8)  # no message waited longer than EXPIRY

    def test_queue_depth_and_message_age_while_the_worker_is_busy(self):
        before = scrape(self.worker_metrics)
        old_count = value(before, "channels_message_age_seconds_count", channel="http.request")
        old_fast = value(before, "channels_message_age_seconds_bucket", channel="http.request",
                         le="1.0")
        # The one worker runs /hold/ for 5 s (once it has taken it, its
        # message's age is counted); three requests wait behind it.
        answers = [Answer(self.url + "/hold/?seconds=5")]
        wait_until(lambda: value(scrape(self.worker_metrics), "channels_message_age_seconds_count",
                                 channel="http.request") > old_count, "/hold/ taken")
        answers += [Answer(self.url + "/") for _ in range(3)]
        wait_until(lambda: value(scrape(self.worker_metrics), "channels_queue_depth",
                                 channel="http.request") >= 3, "three requests queued")
        for answer in answers:
            self.assertEqual(answer.result().status_code, 200)
        wait_until(lambda: value(scrape(self.worker_metrics), "channels_queue_depth",
                                 channel="http.request") == 0, "the queue empty again")
        after = scrape(self.worker_metrics)
        waited = ((value(after, "channels_message_age_seconds_count", channel="http.request")
                   - old_count)
                  - (value(after, "channels_message_age_seconds_bucket", channel="http.request",
                           le="1.0") - old_fast))
        self.assertGreaterEqual(waited, 3, "the requests behind /hold/ waited over a second")

    @property
    def redis_label(self) -> str:
        return f"127.0.0.1:{self.redis.port}"

    def test_a_shard_down_and_back(self):
        shard = self.redis_label
        failures = {url: value(scrape(url), "channels_redis_command_failures_total",
                               shard=shard) for url in (self.server_metrics, self.worker_metrics)}
        for url in failures:
            self.assertEqual(value(scrape(url), "channels_redis_up", shard=shard), 1)
        self.redis.stop()
        for url in failures:
            wait_until(lambda url=url: value(scrape(url), "channels_redis_up", shard=shard) == 0,
                       f"{url} reports the shard down")
            self.assertGreater(value(scrape(url), "channels_redis_command_failures_total",
                                     shard=shard), failures[url])
        # A request meanwhile: its message cannot be sent (while heartbeats
        # cannot be read, workers count as running): 503, and counted.
        refused = value(scrape(self.server_metrics), "channels_layer_send_failures_total",
                        reason="unavailable")
        response = requests.get(self.url + "/down/", timeout=30)
        self.assertEqual(response.status_code, 503)
        self.assertIn("Channel layer unavailable", response.text)
        wait_until(lambda: value(scrape(self.server_metrics), "channels_layer_send_failures_total",
                                 reason="unavailable") > refused, "the refused send counted")
        self.assertGreaterEqual(value(scrape(self.server_metrics),
                                      "channels_http_responses_total", status="503"), 1)
        self.redis.start()
        for url in failures:
            wait_until(lambda url=url: value(scrape(url), "channels_redis_up", shard=shard) == 1,
                       f"{url} reports the shard up again")
        # And it serves again.
        wait_until(lambda: requests.get(self.url + "/again/", timeout=10).status_code == 200,
                   "the server answers through the worker again")


class RunserverMetricsTests(SimpleTestCase):
    def test_one_page_with_the_server_and_its_worker_threads(self):
        backend = {"BACKEND": "channels.backends.memory.InMemoryChannelBackend",
                   "ROUTING": ROUTING}
        address = f"127.0.0.1:{free_port()}"
        server = ServerProcess("tests.interface_redis_settings", "--noreload", "--metrics",
                               address, env={"CHANNELS_TEST_BACKEND": json.dumps(backend)})
        self.addCleanup(server.kill)
        server.wait_for(f"Metrics at http://{address}/metrics")
        self.assertEqual(requests.get(server.url + "/", timeout=30).status_code, 200)

        def counted():
            samples = scrape(f"http://{address}/metrics")
            return (value(samples, "channels_http_responses_total", status="200") >= 1
                    and value(samples, "channels_worker_messages_total",
                              channel="http.request", outcome="ok") >= 1
                    and value(samples, "channels_message_age_seconds_count",
                              channel="http.request") >= 1) and samples
        samples = wait_until(counted, "runserver's counts")
        # The in-memory backend has no Redis shards to report.
        self.assertFalse([key for key in samples if key[0] == "channels_redis_up"])
        self.assertNotIn("# TYPE", requests.get(server.url + "/metrics", timeout=30).text)
