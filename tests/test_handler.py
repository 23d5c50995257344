"""Django's request handling behind http.request messages."""

import hashlib
import json
import os

from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.test import SimpleTestCase, override_settings
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart

from channels.backends import channel_backends
from channels.backends.memory import InMemoryChannelBackend
from channels.checks import check_http_settings
from channels.messages.http import (
    BODY_CHUNK_SIZE,
    ResponseAborted,
    closed_body_message,
    response_chunk,
)
from channels.names import new_name
from channels.registry import ConsumerRegistry
from channels.testing import ChannelTestCase
from channels.worker.handler import http_consumer
from tests.http_views import BIG_SIZE, live_receivers
from tests.support.http_client import read_response, send_request


@override_settings(ROOT_URLCONF="tests.http_views")
class HandlerTests(ChannelTestCase):
    def request(self, method, target, body=b"", headers=()):
        backend = self.get_backend()
        reply = send_request(backend, method, target, body, headers)
        self.consume("http.request")
        return read_response(backend, reply, timeout=0)

    def get_json(self, target, **kwargs):
        response = self.request("GET", target, **kwargs)
        self.assertEqual(response.status, 200, response.body)
        return json.loads(response.body)

    def test_routed_by_default(self):
        self.assertIs(ConsumerRegistry().consumer_for_channel("http.request"), http_consumer)
        self.assertIs(ConsumerRegistry({"http.request": print})
                      .consumer_for_channel("http.request"), print)

    def test_handler_follows_settings_middleware_reads_once(self):
        self.assertEqual(self.request("GET", b"/session/").status, 200)
        with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
            response = self.request("GET", b"/session/")
        self.assertEqual(response.status, 200)
        session = next(v for v in response.header("Set-Cookie") if v.startswith("sessionid="))
        value = session.split(";")[0].split("=", 1)[1]
        self.assertIn(":", value)  # a signed cookie, not a database session key

    def test_get(self):
        response = self.request("GET", b"/hello/")
        self.assertEqual((response.status, response.reason, response.body),
                         (200, "OK", b"Hello, world"))
        self.assertEqual(response.header("Content-Type"), ["text/html; charset=utf-8"])
        self.assertEqual(len(response.messages), 1)

    def test_request_attributes_match_wsgi(self):
        data = self.get_json(
            b"/meta/?a=1&a=%C3%A9&b=", headers=[
                (b"Cookie", b"x=1; y=2"), (b"User-Agent", b"tests/1"),
                (b"Accept", b"text/html"), (b"Accept", b"*/*"), (b"X_Spoof", b"no")],
        )
        self.assertEqual(data, {
            "method": "GET", "path": "/meta/", "path_info": "/meta/", "scheme": "http",
            "host": "testserver", "uri": "http://testserver/meta/?a=1&a=%C3%A9&b=",
            "GET": {"a": ["1", "\xe9"], "b": [""]}, "COOKIES": {"x": "1", "y": "2"},
            "remote": "127.0.0.1", "protocol": "HTTP/1.1", "agent": "tests/1",
            # Repeated headers joined; underscore names dropped as WSGI servers do.
            "accept": "text/html,*/*", "spoof": None,
        })

    @override_settings(FORCE_SCRIPT_NAME="/app")
    def test_script_name(self):
        data = self.get_json(b"/meta/")
        self.assertEqual((data["path"], data["path_info"]), ("/app/meta/", "/meta/"))

    def test_root_path(self):
        backend = self.get_backend()
        reply = send_request(backend, "GET", b"/app/meta/", root_path="/app")
        self.consume("http.request")
        data = json.loads(read_response(backend, reply, 0).body)
        self.assertEqual((data["path"], data["path_info"]), ("/app/meta/", "/meta/"))

    def test_urlencoded_post(self):
        response = self.request("POST", b"/form/", b"a=1&a=2&b=%C3%A9", headers=[
            (b"Content-Type", b"application/x-www-form-urlencoded")])
        self.assertEqual(json.loads(response.body),
                         {"POST": {"a": ["1", "2"], "b": ["\xe9"]}, "FILES": {}})

    def test_multipart_upload_of_20_mb_from_body_chunks(self):
        # The whole body is sent before the handler runs (no interface
        # server paces it here), so its channel needs room for all of it.
        backend = InMemoryChannelBackend(channel_capacity={"http.request.body.*": 100})
        previous = channel_backends.set("default", backend)
        self.addCleanup(channel_backends.set, "default", previous)
        upload = os.urandom(20 * 1024 * 1024)
        named = type("Upload", (), {"read": lambda self: upload, "name": "big.bin"})()
        body = encode_multipart(BOUNDARY, {"title": "big", "file": named})
        response = self.request("POST", b"/form/", body, headers=[
            (b"Content-Type", MULTIPART_CONTENT.encode())])
        self.assertEqual(response.status, 200, response.body[:500])
        self.assertEqual(json.loads(response.body), {
            "POST": {"title": ["big"]},
            "FILES": {"file": ["big.bin", len(upload), hashlib.sha256(upload).hexdigest()]},
        })

    def test_raw_body_over_several_chunks(self):
        body = os.urandom(2 * BODY_CHUNK_SIZE + 7)
        response = self.request("PUT", b"/raw/", body, headers=[
            (b"Content-Type", b"application/octet-stream")])
        self.assertEqual(json.loads(response.body), {
            "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
            "content_type": "application/octet-stream"})

    def test_client_gone_mid_upload(self):
        backend = self.get_backend()
        body_channel = new_name("http.request.body")
        reply = new_name("!http.response")
        message = {
            "reply_channel": reply, "http_version": "1.1", "method": "PUT", "scheme": "http",
            "path": "/raw/", "root_path": "", "query_string": "", "query": {},
            "headers": [["host", "testserver"], ["content-length", "900000"]],
            "cookies": {}, "client": None, "server": None,
            "body": b"x" * BODY_CHUNK_SIZE, "body_channel": body_channel,
        }
        backend.send(body_channel, closed_body_message())
        with self.assertLogs("django.request", "ERROR"):
            self.send_and_consume("http.request", message)
        self.assertEqual(read_response(backend, reply, 0).status, 500)
        self.assertEqual(backend.receive_many([body_channel]), (None, None))

    @override_settings(CHANNELS_HTTP_BODY_TIMEOUT=0.05)
    def test_missing_body_chunk_times_out(self):
        backend = self.get_backend()
        reply = send_request(backend, "PUT", b"/raw/", b"y" * (BODY_CHUNK_SIZE + 1))
        _, request = backend.receive_many(["http.request"])
        # The rest of the body never comes.
        self.assertIsNotNone(backend.receive_many([request["body_channel"]])[1])
        with self.assertLogs("django.request", "ERROR") as logs:
            self.send_and_consume("http.request", request)
        self.assertIn("within 0.05 s", "\n".join(logs.output))
        self.assertEqual(read_response(backend, reply, 0).status, 500)

    def test_cookies_and_sessions(self):
        first = self.request("GET", b"/session/")
        self.assertEqual(first.body, b"1")
        cookies = dict(value.split(";")[0].split("=", 1) for value in first.header("Set-Cookie"))
        self.assertEqual(cookies["flavour"], "oat")
        self.assertIn("HttpOnly", next(v for v in first.header("Set-Cookie")
                                       if v.startswith("flavour=")))
        cookie = f"sessionid={cookies['sessionid']}".encode()
        second = self.request("GET", b"/session/", headers=[(b"Cookie", cookie)])
        self.assertEqual(second.body, b"2")

    def test_not_found_page(self):
        with self.assertLogs("django.request", "WARNING"):
            response = self.request("GET", b"/nowhere/")
        self.assertEqual(response.status, 404)
        self.assertIn(b"Not Found", response.body)

    def test_exception_gives_500_page_and_worker_goes_on(self):
        with self.assertLogs("django.request", "ERROR") as logs:
            response = self.request("GET", b"/fail/")
        self.assertEqual(response.status, 500)
        self.assertIn(b"Server Error (500)", response.body)
        self.assertIn("ValueError: view broke", "\n".join(logs.output))
        self.assertEqual(self.request("GET", b"/hello/").status, 200)

    @override_settings(DEBUG=True)
    def test_debug_error_page(self):
        with self.assertLogs("django.request", "WARNING") as logs:
            response = self.request("GET", b"/fail/?q=1")
        self.assertEqual(response.status, 500)
        self.assertIn(b"ValueError", response.body)
        self.assertIn(b"view broke", response.body)
        self.assertIn(b"ChannelRequest", response.body)
        self.assertIn("Internal Server Error: /fail/", logs.output[0])

    def test_csrf_enforced(self):
        with self.assertLogs("django.security.csrf", "WARNING"):
            response = self.request("POST", b"/session/", b"a=1", headers=[
                (b"Content-Type", b"application/x-www-form-urlencoded")])
        self.assertEqual(response.status, 403)

    def test_permission_denied_and_disallowed_host(self):
        with self.assertLogs("django.request", "WARNING"):
            self.assertEqual(self.request("GET", b"/forbidden/").status, 403)
        with self.assertLogs("django.security.DisallowedHost", "ERROR"):
            response = self.request("GET", b"/hello/", headers=[(b"Host", b"evil.example")])
        self.assertEqual(response.status, 400)

    def test_custom_status_and_headers(self):
        response = self.request("GET", b"/status/")
        self.assertEqual((response.status, response.reason), (418, "I'm a Teapot"))
        self.assertEqual(response.header("X-Multi"), ["one"])

    def test_signals(self):
        seen = []
        started = lambda **kw: seen.append("started")  # noqa: E731
        finished = lambda **kw: seen.append("finished")  # noqa: E731
        request_started.connect(started)
        request_finished.connect(finished)
        self.addCleanup(request_started.disconnect, started)
        self.addCleanup(request_finished.disconnect, finished)
        self.request("GET", b"/hello/")
        self.request("GET", b"/stream/")
        self.assertEqual(seen, ["started", "finished"] * 2)

    def test_request_keeps_the_test_transaction(self):
        # As under Django's test client, the request signals close no
        # database connection (it holds the test's transaction)...
        self.assertEqual(self.request("GET", b"/closes-connections/").body, b"False")
        # ...and they do again outside the test worker.
        self.assertIn(close_old_connections, live_receivers(request_started))

    def test_streaming_response_arrives_in_chunks(self):
        response = self.request("GET", b"/stream/")
        self.assertEqual(response.body, b"part 0\npart 1\npart 2\n")
        self.assertEqual([(m.get("status"), m["content"], m["more_content"])
                          for m in response.messages],
                         [(200, b"", True), (None, b"part 0\n", True),
                          (None, b"part 1\n", True), (None, b"part 2\n", True),
                          (None, b"", False)])

    def test_streaming_response_that_breaks_is_aborted(self):
        backend = self.get_backend()
        reply = send_request(backend, "GET", b"/broken-stream/")
        with self.assertRaisesMessage(ValueError, "stream broke"):
            self.consume("http.request")
        messages = [backend.receive_many([reply])[1] for _ in range(3)]
        self.assertEqual([m.get("content") for m in messages[:2]], [b"", b"fine so far\n"])
        self.assertEqual(messages[2], {"abort": True})
        with self.assertRaises(ResponseAborted):
            response_chunk(messages[2])

    def test_file_response_in_large_chunks(self):
        response = self.request("GET", b"/file/")
        self.assertEqual(len(response.body), BIG_SIZE)
        self.assertEqual(response.header("Content-Length"), [str(BIG_SIZE)])
        self.assertIn("data.bin", response.header("Content-Disposition")[0])
        sizes = [len(m["content"]) for m in response.messages]
        self.assertEqual(sizes, [0, BODY_CHUNK_SIZE, BODY_CHUNK_SIZE, BODY_CHUNK_SIZE, 0])

    def test_large_response_split_under_message_limit(self):
        response = self.request("GET", b"/big/")
        self.assertEqual(response.body, bytes(range(256)) * (BIG_SIZE // 256))
        self.assertEqual([len(m["content"]) for m in response.messages], [BODY_CHUNK_SIZE] * 3)
        self.assertEqual([m["more_content"] for m in response.messages], [True, True, False])

    def test_malformed_message_answers_400(self):
        reply = new_name("!http.response")
        with self.assertLogs("channels.handler", "WARNING"):
            self.send_and_consume("http.request", {"reply_channel": reply, "path": "/"})
        self.assertEqual(read_response(self.get_backend(), reply, 0).status, 400)

    def test_no_reply_channel_is_dropped(self):
        with self.assertLogs("channels.handler", "WARNING"):
            self.send_and_consume("http.request", {"path": "/hello/"})


class HTTPSettingsCheckTests(SimpleTestCase):
    def test_valid_and_default_settings_pass(self):
        self.assertEqual(check_http_settings(), [])
        with override_settings(CHANNELS_HTTP_BODY_TIMEOUT=0.5, CHANNELS_WSGI_BACKEND="default"):
            self.assertEqual(check_http_settings(), [])

    def test_bad_timeouts_and_alias(self):
        with override_settings(CHANNELS_HTTP_BODY_TIMEOUT=0, CHANNELS_HTTP_SEND_TIMEOUT="5",
                               CHANNELS_HTTP_RESPONSE_TIMEOUT=True,
                               CHANNELS_WSGI_BACKEND="elsewhere"):
            errors = check_http_settings()
        self.assertEqual([e.id for e in errors], ["channels.E002"] * 3 + ["channels.E003"])
        self.assertIn("CHANNELS_HTTP_SEND_TIMEOUT must be a positive number", errors[1].msg)
        self.assertIn("'elsewhere'", errors[3].msg)
