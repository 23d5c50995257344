"""The WSGI adapter: in process against the in-memory backend and a worker
thread, then served by a real gunicorn with a real Redis and ``runworker``."""

import concurrent.futures
import hashlib
import io
import json
import os
import threading
import time
from unittest import mock
from wsgiref.util import setup_testing_defaults

import requests
from django.test import SimpleTestCase, override_settings

from channels.backends import channel_backends
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.interfaces.wsgi import WSGIAdapter, application
from channels.messages.http import BODY_CHUNK_SIZE
from channels.names import is_response_channel
from channels.replies import ResponseIncomplete, receiver_for
from channels.testing import ChannelTestCase
from tests.http_views import BIG_SIZE
from tests.support.processes import django_env, start_gunicorn, start_worker
from tests.support.redis_servers import backend_config, shared_servers
from tests.support.worker_threads import worker_threads

HTTP_ROUTING = {"http.request": "channels.worker.handler.http_consumer"}


def environ_for(method="GET", target="/hello/", body=b"", host="testserver", **extra):
    path, _, query = target.partition("?")
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query,
               "HTTP_HOST": host, "wsgi.input": io.BytesIO(body),
               "CONTENT_LENGTH": str(len(body)) if body else "", **extra}
    setup_testing_defaults(environ)
    return environ


class Result:
    def __init__(self, app, environ, iterate=True):
        self.status, self.headers = None, None
        self.body_iter = app(environ, self.start_response)
        self.chunks = list(self.body_iter) if iterate else []
        if iterate and hasattr(self.body_iter, "close"):
            self.body_iter.close()

    def start_response(self, status, headers, exc_info=None):
        self.status, self.headers = status, headers

    @property
    def code(self):
        return int(self.status.split()[0])

    @property
    def body(self):
        return b"".join(self.chunks)

    def header(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]


class FlakyReceiveBackend(InMemoryChannelBackend):
    """Its first receive of responses fails, as when Redis restarts under the
    receiver (workers receive in batches too, and are left alone)."""

    failed = False

    def _receive_batch(self, channels, limit, timeout):
        if not self.failed and all(is_response_channel(name) for name in channels):
            self.failed = True
            raise ChannelBackendUnavailable("store restarting")
        return super()._receive_batch(channels, limit, timeout)


class UnreachableBackend(InMemoryChannelBackend):
    def _send(self, channel, data):
        raise ChannelBackendUnavailable("connection refused")


@override_settings(
    ROOT_URLCONF="tests.http_views",
    CHANNEL_BACKENDS={"default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": HTTP_ROUTING,
        "CHANNEL_CAPACITY": {"http.request": 1},
    }},
    CHANNELS_SERVER={"HTTP_TIMEOUT": 2},
)
class AdapterTests(ChannelTestCase):
    def setUp(self):
        self.app = WSGIAdapter()

    def serve(self, *args, **kwargs):
        with worker_threads(self.get_backend(), ["http.request"], 1):
            return Result(self.app, environ_for(*args, **kwargs))

    def test_module_application(self):
        self.assertIsInstance(application, WSGIAdapter)

    def test_get_through_a_worker(self):
        result = self.serve("GET", "/meta/?a=%C3%A9", HTTP_COOKIE="x=1", REMOTE_ADDR="10.1.2.3")
        self.assertEqual(result.status, "200 OK")
        self.assertEqual(result.header("Content-Type"), ["application/json"])
        data = json.loads(result.body)
        self.assertEqual((data["path"], data["GET"], data["COOKIES"], data["remote"]),
                         ("/meta/", {"a": ["\xe9"]}, {"x": "1"}, "10.1.2.3"))

    def test_path_without_raw_uri(self):
        # As WSGI gives it: the unquoted bytes as latin-1, no RAW_URI.
        path = "/echo-path/\u20ac uro/".encode().decode("latin-1")
        result = self.serve("GET", "/", PATH_INFO=path)
        self.assertEqual(json.loads(result.body), {"path": "/echo-path/\u20ac uro/",
                                                   "rest": "\u20ac uro/"})

    def test_upload_in_chunks(self):
        body = os.urandom(3 * BODY_CHUNK_SIZE + 5)
        result = self.serve("PUT", "/raw/", body, CONTENT_TYPE="application/octet-stream")
        self.assertEqual(json.loads(result.body)["sha256"], hashlib.sha256(body).hexdigest())

    def test_broken_stream_cuts_the_response_off_at_once(self):
        with worker_threads(self.get_backend(), ["http.request"], 1), \
                self.assertLogs("channels.worker", "ERROR"):
            result = Result(self.app, environ_for(target="/broken-stream/"), iterate=False)
            chunks = iter(result.body_iter)
            self.assertEqual(next(chunks), b"fine so far\n")
            started = time.monotonic()
            with self.assertRaisesMessage(ResponseIncomplete, "aborted"):
                next(chunks)
            self.assertLess(time.monotonic() - started, 1)
            result.body_iter.close()

    def test_streaming_response_is_iterated_in_chunks(self):
        result = self.serve("GET", "/stream/")
        self.assertEqual(result.chunks, [b"part 0\n", b"part 1\n", b"part 2\n"])

    def test_disallowed_host_never_reaches_the_layer(self):
        with self.assertLogs("channels.interfaces.wsgi", "WARNING"):
            result = Result(self.app, environ_for(host="evil.example"))
        self.assertEqual(result.code, 400)
        self.assertEqual(self.get_backend().receive_many(["http.request"]), (None, None))

    def test_full_channel_is_503_with_retry_after(self):
        self.send("http.request", {"filler": True})
        result = Result(self.app, environ_for())
        self.assertEqual(result.code, 503)
        self.assertEqual(result.header("Retry-After"), ["1"])

    def test_unreachable_backend_is_503(self):
        previous = channel_backends.set("default", UnreachableBackend())
        self.addCleanup(channel_backends.set, "default", previous)
        with self.assertLogs("channels.interfaces.wsgi", "ERROR"):
            result = Result(self.app, environ_for())
        self.assertEqual((result.code, result.header("Retry-After")), (503, ["1"]))

    @override_settings(CHANNELS_HTTP_SEND_TIMEOUT=0.2)
    def test_body_the_view_does_not_take_is_503(self):
        backend = InMemoryChannelBackend(routing=HTTP_ROUTING,
                                         channel_capacity={"http.request.body.*": 1})
        previous = channel_backends.set("default", backend)
        self.addCleanup(channel_backends.set, "default", previous)
        body = os.urandom(3 * BODY_CHUNK_SIZE)  # no worker takes the second piece
        with self.assertLogs("channels.interfaces.wsgi", "WARNING") as logs:
            result = Result(self.app, environ_for("PUT", "/raw/", body))
        self.assertEqual((result.code, result.header("Retry-After")), (503, ["1"]))
        self.assertIn("Could not deliver the body", logs.output[0])
        _, request = backend.receive_many(["http.request"])
        _, disconnect = backend.receive_many(["http.disconnect"])
        self.assertEqual(disconnect["reply_channel"], request["reply_channel"])

    def test_reply_receiver_survives_a_backend_failure(self):
        backend = FlakyReceiveBackend(routing=HTTP_ROUTING)
        previous = channel_backends.set("default", backend)
        self.addCleanup(channel_backends.set, "default", previous)
        with mock.patch("channels.replies.RECEIVE_TIMEOUT", 0.05), \
                self.assertLogs("channels.replies", "ERROR") as logs, \
                worker_threads(backend, ["http.request"], 1):
            result = Result(self.app, environ_for())
        self.assertEqual((result.code, result.body), (200, b"Hello, world"))
        self.assertIn("store restarting", "\n".join(logs.output))

    @override_settings(CHANNELS_SERVER={"HTTP_TIMEOUT": 0.1})
    def test_no_worker_is_504_in_time(self):
        started = time.monotonic()
        result = Result(self.app, environ_for())
        self.assertEqual(result.code, 504)
        self.assertLess(time.monotonic() - started, 1)

    def test_malformed_response_is_500(self):
        backend = self.get_backend()

        def answer():
            _, message = backend.receive_many_blocking(["http.request"], 2)
            backend.send(message["reply_channel"], {"status": "200"})

        thread = threading.Thread(target=answer)
        thread.start()
        with self.assertLogs("channels.interfaces.wsgi", "ERROR") as logs:
            result = Result(self.app, environ_for())
        thread.join()
        self.assertEqual(result.code, 500)
        self.assertIn("status must be an int", logs.output[0])

    def test_client_leaving_unregisters_and_sends_disconnect(self):
        backend = self.get_backend()
        with worker_threads(backend, ["http.request"], 1):
            result = Result(self.app, environ_for(target="/stream/"), iterate=False)
        receiver = receiver_for(backend)
        self.assertEqual(receiver.waiting, 1)
        result.body_iter.close()  # the client left before any content
        self.assertEqual(receiver.waiting, 0)
        _, message = backend.receive_many(["http.disconnect"])
        self.assertEqual(message["path"], "/stream/")


@override_settings(
    ROOT_URLCONF="tests.http_views",
    CHANNEL_BACKENDS={"default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend", "ROUTING": HTTP_ROUTING}},
)
class ConcurrencyTests(ChannelTestCase):
    def test_concurrent_requests_each_get_their_own_response(self):
        app = WSGIAdapter()
        with worker_threads(self.get_backend(), ["http.request"], 2), \
                concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(
                lambda n: Result(app, environ_for(target=f"/meta/?n={n}")), range(40)))
        self.assertEqual([json.loads(r.body)["GET"] for r in results],
                         [{"n": [str(n)]} for n in range(40)])
        self.assertEqual(receiver_for(self.get_backend()).waiting, 0)


class GunicornTests(SimpleTestCase):
    """gunicorn serving the adapter, Redis carrying the messages, a
    ``runworker`` process running Django: the production setup."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        config = backend_config(shared_servers(1))
        env = django_env("tests.wsgi_settings", CHANNELS_TEST_BACKEND=json.dumps(config))
        cls.worker = start_worker(env)
        cls.addClassCleanup(cls.worker.stop)
        cls.gunicorn, port = start_gunicorn("channels.interfaces.wsgi:application", env,
                                            "--workers", "1", "--threads", "4")
        cls.addClassCleanup(cls.gunicorn.stop)
        cls.url = f"http://127.0.0.1:{port}"

    def setUp(self):
        self.http = requests.Session()
        self.addCleanup(self.http.close)

    def get(self, path, **kwargs):
        return self.http.get(self.url + path, timeout=20, **kwargs)

    def test_get_and_keep_alive(self):
        for _ in range(3):
            response = self.get("/hello/")
            self.assertEqual((response.status_code, response.text), (200, "Hello, world"))
        head = self.http.head(self.url + "/hello/", timeout=20)
        self.assertEqual((head.status_code, head.content), (200, b""))
        self.assertEqual(self.get("/hello/").text, "Hello, world")

    def test_multipart_upload_of_20_mb(self):
        upload = os.urandom(20 * 1024 * 1024)
        response = self.http.post(self.url + "/form/", data={"title": "big"},
                                  files={"file": ("big.bin", upload)}, timeout=60)
        self.assertEqual(response.status_code, 200, response.text[:300])
        self.assertEqual(response.json(), {
            "POST": {"title": ["big"]},
            "FILES": {"file": ["big.bin", len(upload), hashlib.sha256(upload).hexdigest()]},
        })

    def test_urlencoded_post_and_chunked_request_body(self):
        response = self.http.post(self.url + "/form/", data={"a": ["1", "\xe9"]}, timeout=20)
        self.assertEqual(response.json()["POST"], {"a": ["1", "\xe9"]})
        body = os.urandom(BODY_CHUNK_SIZE + 100)
        response = self.http.put(self.url + "/raw/", data=iter([body[:1000], body[1000:]]),
                                 timeout=20)
        self.assertEqual(response.json()["sha256"], hashlib.sha256(body).hexdigest())

    def test_cookies_and_sessions(self):
        self.assertEqual(self.get("/session/").text, "1")
        self.assertEqual(self.http.cookies["flavour"], "oat")
        self.assertEqual(self.get("/session/").text, "2")

    def test_streaming_arrives_before_it_finishes(self):
        started = time.monotonic()
        with self.http.get(self.url + "/slow-stream/", stream=True, timeout=20) as response:
            chunks = response.iter_content(chunk_size=None)
            self.assertEqual(next(chunks), b"first\n")
            first_at = time.monotonic() - started
            self.assertEqual(b"".join(chunks), b"second\n")
            done_at = time.monotonic() - started
        self.assertEqual(response.headers["Transfer-Encoding"], "chunked")
        self.assertGreater(done_at - first_at, 0.2)  # the view sleeps 0.5 s in between

    def test_large_and_file_responses(self):
        self.assertEqual(self.get("/big/").content, bytes(range(256)) * (BIG_SIZE // 256))
        response = self.get("/file/")
        self.assertEqual(len(response.content), BIG_SIZE)
        self.assertEqual(response.headers["Content-Length"], str(BIG_SIZE))

    def test_error_pages_and_host_check(self):
        self.assertEqual(self.get("/nowhere/").status_code, 404)
        response = self.get("/fail/")
        self.assertEqual(response.status_code, 500)
        self.assertIn("Server Error (500)", response.text)
        self.assertEqual(self.get("/hello/", headers={"Host": "evil.example"}).status_code, 400)
        self.assertEqual(self.get("/hello/").status_code, 200)
