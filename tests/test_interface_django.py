"""Django behind the interface server: the default http.request consumer
running real views, reached over real sockets."""

import hashlib
import os

import requests
from django.test import TransactionTestCase, override_settings

from tests.support.interface_server import serving

DJANGO = {}  # no routing: http.request goes to the default Django consumer


@override_settings(ROOT_URLCONF="tests.http_views")
class DjangoThroughServerTests(TransactionTestCase):
    # Sessions in the database, written by worker threads.
    databases = {"default"}

    def test_get_and_errors(self):
        with serving(routing=DJANGO) as (handle, _):
            base = f"http://127.0.0.1:{handle.port}"
            self.assertEqual(requests.get(f"{base}/hello/", timeout=5).text, "Hello, world")
            self.assertEqual(requests.get(f"{base}/fail/", timeout=5).status_code, 500)
            self.assertEqual(requests.get(f"{base}/missing/", timeout=5).status_code, 404)
            self.assertEqual(requests.get(f"{base}/hello/", timeout=5).status_code, 200)

    def test_cookies_and_sessions(self):
        with serving(routing=DJANGO) as (handle, _), requests.Session() as browser:
            url = f"http://127.0.0.1:{handle.port}/session/"
            self.assertEqual(browser.get(url, timeout=5).text, "1")
            self.assertEqual(browser.get(url, timeout=5).text, "2")
            self.assertEqual(browser.cookies["flavour"], "oat")

    def test_multipart_upload_of_20_mb_through_a_body_channel_of_two_chunks(self):
        # The recommended capacity: the server holds the client back to the
        # pace at which Django's upload handlers take the body.
        data = os.urandom(20 * 1024 * 1024)
        capacity = {"channel_capacity": {"http.request.body.*": 2}}
        with serving(routing=DJANGO, backend_options=capacity) as (handle, _):
            response = requests.post(f"http://127.0.0.1:{handle.port}/form/",
                                     data={"name": "x"}, files={"upload": ("a.bin", data)},
                                     timeout=60)
        self.assertEqual(response.json(), {
            "POST": {"name": ["x"]},
            "FILES": {"upload": ["a.bin", len(data), hashlib.sha256(data).hexdigest()]}})

    def test_streaming_response_is_chunked(self):
        with serving(routing=DJANGO) as (handle, _):
            response = requests.get(f"http://127.0.0.1:{handle.port}/stream/", stream=True,
                                    timeout=5)
            self.assertEqual(response.headers["transfer-encoding"], "chunked")
            self.assertEqual(list(response.iter_lines()), [b"part 0", b"part 1", b"part 2"])

    def test_proxy_headers_only_when_enabled(self):
        headers = {"X-Forwarded-For": "203.0.113.9, 198.51.100.7",
                   "X-Forwarded-Proto": "https"}
        with serving(routing=DJANGO) as (handle, _):
            meta = requests.get(f"http://127.0.0.1:{handle.port}/meta/", headers=headers,
                                timeout=5).json()
        self.assertEqual((meta["remote"], meta["scheme"]), ("127.0.0.1", "http"))
        with serving(routing=DJANGO, proxy_headers=True) as (handle, _):
            meta = requests.get(f"http://127.0.0.1:{handle.port}/meta/", headers=headers,
                                timeout=5).json()
        # The last address is the one the proxy added.
        self.assertEqual((meta["remote"], meta["scheme"]), ("198.51.100.7", "https"))
