"""Channel(...).as_view() and view_consumer, with a real worker in a thread."""

import hashlib
import os

from django.test import override_settings

from channels.replies import receiver_for
from channels.testing import ChannelTestCase
from tests.support.worker_threads import worker_threads

ROUTING = {"tests.view": "tests.http_views.view_channel_consumer"}


@override_settings(
    ROOT_URLCONF="tests.http_views",
    CHANNEL_BACKENDS={"default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": ROUTING,
        "CHANNEL_CAPACITY": {"tests.view": 2},
    }},
)
class ChannelViewTests(ChannelTestCase):
    def get(self, query="", **kwargs):
        with worker_threads(self.get_backend(), ["tests.view"], 1):
            response = self.client.get(f"/via-channel/{query}", **kwargs)
        # Whatever the outcome, nothing is left waiting for a reply.
        self.assertEqual(receiver_for(self.get_backend()).waiting, 0)
        return response

    def test_request_goes_through_the_channel_and_back(self):
        self.client.cookies["flavour"] = "oat"
        response = self.get("?x=1&x=2", headers={"User-Agent": "tests/2"})
        self.assertEqual(response.status_code, 200)
        self.assertEqual(response["Content-Type"], "application/json")
        self.assertEqual(response["X-Behind"], "channel")
        self.assertEqual(response.cookies["seen"].value, "yes")
        self.assertEqual(response.cookies["seen"]["max-age"], "60")
        self.assertEqual(response.json(), {
            "method": "GET", "path": "/via-channel/", "GET": ["1", "2"], "length": 0,
            "sha256": hashlib.sha256(b"").hexdigest(), "agent": "tests/2",
            "cookies": {"flavour": "oat"},
        })

    def assert_large_body_travels(self, url):
        body = os.urandom(1536 * 1024)
        with worker_threads(self.get_backend(), ["tests.view"], 1):
            response = self.client.post(url, body, content_type="application/octet-stream")
        self.assertEqual(response.json()["length"], len(body))
        self.assertEqual(response.json()["sha256"], hashlib.sha256(body).hexdigest())

    def test_large_body_travels_in_chunks(self):
        self.assert_large_body_travels("/via-channel/")

    def test_large_body_read_before_the_view_travels_in_chunks(self):
        # Read whole by a middleware, it is cut into chunks all the same.
        self.assert_large_body_travels("/via-channel-read/")

    def test_streaming_response_streams(self):
        with worker_threads(self.get_backend(), ["tests.view"], 1):
            response = self.client.get("/via-channel/?do=stream")
            self.assertTrue(response.streaming)
            self.assertEqual(receiver_for(self.get_backend()).waiting, 1)
            self.assertEqual(b"".join(response.streaming_content), b"one,two,three")
            response.close()
        self.assertEqual(receiver_for(self.get_backend()).waiting, 0)
        # The response was complete: nobody is told of a disconnect.
        self.assertEqual(self.get_backend().receive_many(["http.disconnect"]), (None, None))

    def test_consumer_exception_gives_its_500_page(self):
        # The test client would re-raise the consumer's exception, which it
        # hears of through got_request_exception in the worker thread.
        self.client.raise_request_exception = False
        with self.assertLogs("django.request", "ERROR") as logs:
            response = self.get("?do=fail")
        self.assertEqual(response.status_code, 500)
        self.assertIn(b"Server Error (500)", response.content)
        self.assertIn("consumer view broke", "\n".join(logs.output))

    def test_malformed_response_is_a_500(self):
        with self.assertLogs("channels.views", "ERROR") as logs:
            response = self.get("?do=malformed")
        self.assertEqual(response.status_code, 500)
        self.assertIn("status must be an int", logs.output[0])

    @override_settings(CHANNELS_HTTP_RESPONSE_TIMEOUT=0.1)
    def test_no_response_is_a_504(self):
        response = self.get("?do=silent")
        self.assertEqual(response.status_code, 504)
        _, message = self.get_backend().receive_many(["http.disconnect"])
        self.assertEqual(message["path"], "/via-channel/")

    def test_full_channel_is_a_503_with_retry_after(self):
        for _ in range(2):
            self.send("tests.view", {"filler": True})
        response = self.client.get("/via-channel/")
        self.assertEqual(response.status_code, 503)
        self.assertEqual(response["Retry-After"], "1")


@override_settings(
    ROOT_URLCONF="tests.docs_examples.offload",
    CHANNEL_BACKENDS={"default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": "tests.docs_examples.offload.channel_routing",
    }},
)
class DocsExampleTests(ChannelTestCase):
    def test_offloaded_view(self):
        with worker_threads(self.get_backend(), ["reports.build"], 1):
            response = self.client.get("/report/?rows=5")
        self.assertEqual(response.json(), {"rows": 5, "total": 10})
