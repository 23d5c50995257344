"""The Redis backend's HOSTS setting, what a bad entry says, and a host that
is unreachable or is not Redis."""

import os
import socket
import textwrap
import threading
import time

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from channels.backends import create_backend
from channels.checks import check_channel_backends
from channels.exceptions import ChannelBackendUnavailable
from channels.names import new_name
from tests.support.redis_servers import shared_servers
from tests.support.redis_tests import ROOT


class HostsTests(SimpleTestCase):
    def build(self, hosts):
        return create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend", "HOSTS": hosts})

    def test_accepted_forms(self):
        backend = self.build([("cache", 6380), "redis://:secret@db.example:6390/2",
                              "rediss://tls.example", "unix:///run/redis.sock?db=3"])
        self.assertEqual([a.label for a in backend.addresses],
                         ["cache:6380", "db.example:6390/2", "tls.example:6379",
                          "unix:/run/redis.sock/3"])
        self.assertEqual(backend.addresses[1].options["password"], "secret")
        self.assertEqual(backend.addresses[1].options["db"], 2)
        self.assertEqual(backend.addresses[2].options["connection_class"].__name__,
                         "SSLConnection")

    def test_default_is_localhost(self):
        self.assertEqual([a.label for a in self.build(None).addresses], ["localhost:6379"])

    def test_bad_entries_are_named(self):
        cases = [
            (["redis://a", ("b", "6379")], "['HOSTS'][1] = ('b', '6379')"),
            ([("b", 0)], "['HOSTS'][0] = ('b', 0)"),
            (["http://a"], "['HOSTS'][0] = 'http://a' is not a URL"),
            (["redis://:hunter2@a:99999"], "['HOSTS'][0] = 'redis://:***@a:99999'"),
            (["unix://"], "has no socket path"),
            ([("a", 1), ("a", 1)], "lists a:1 twice"),
            ("redis://a", "must be a non-empty list"),
            ([], "must be a non-empty list"),
            ([["a", 1, 2]], "['HOSTS'][0] = ['a', 1, 2]"),
        ]
        for hosts, message in cases:
            with self.subTest(hosts=hosts), self.assertRaisesMessage(ImproperlyConfigured,
                                                                     message):
                self.build(hosts)

    def test_system_check_names_a_bad_entry(self):
        hosts = [("127.0.0.1", 1), "redis://127.0.0.1:notaport"]
        with override_settings(CHANNEL_BACKENDS={"default": {
                "BACKEND": "channels.backends.redis.RedisChannelBackend", "HOSTS": hosts}}):
            errors = check_channel_backends()
        self.assertEqual([error.id for error in errors], ["channels.E001"])
        self.assertIn("['HOSTS'][1] = 'redis://127.0.0.1:notaport'", errors[0].msg)

    def test_password_never_in_error(self):
        with self.assertRaises(ImproperlyConfigured) as caught:
            self.build(["redis://user:hunter2@a:0x"])
        self.assertNotIn("hunter2", str(caught.exception))

    def test_sentinel_forms(self):
        backend = self.build([
            "sentinel://:secret@h1:26380,h2,[::1]:26381/mymaster/2"
            "?socket_timeout=2.5&sentinel_password=s%40pw&sentinel_socket_timeout=0.5",
            {"sentinels": [("h3", 26379)], "service_name": "other", "username": "app",
             "password": "secret", "sentinel_kwargs": {"password": "spw"}},
        ])
        url, as_dict = backend.addresses
        self.assertEqual(url.label, "sentinel://h1:26380,h2:26379,[::1]:26381/mymaster/2")
        self.assertEqual(url.options, {"password": "secret", "db": 2, "socket_timeout": 2.5})
        self.assertEqual(url.sentinel.sentinels,
                         (("h1", 26380), ("h2", 26379), ("::1", 26381)))
        self.assertEqual(url.sentinel.service_name, "mymaster")
        self.assertEqual(url.sentinel.options, {"password": "s@pw", "socket_timeout": 0.5})
        self.assertEqual(as_dict.label, "sentinel://h3:26379/other")
        self.assertEqual(as_dict.options, {"username": "app", "password": "secret"})
        self.assertEqual(as_dict.sentinel.options, {"password": "spw"})
        # What the sentinels' clients are made with: the entry's options
        # over the defaults (half a second to connect, one to answer).
        sentinel_kwargs = [shard.sentinels.manager.sentinel_kwargs for shard in backend.shards]
        self.assertEqual([(kwargs["password"], kwargs["socket_connect_timeout"],
                           kwargs["socket_timeout"]) for kwargs in sentinel_kwargs],
                         [("s@pw", 0.5, 0.5), ("spw", 0.5, 1.0)])
        backend.close()

    def test_bad_sentinel_entries_are_named_with_passwords_hidden(self):
        cases = [
            ("sentinel://:hunter2@h1/mymaster?db=x",
             "['HOSTS'][0] = 'sentinel://:***@h1/mymaster?db=x' has a bad option db='x'"),
            ("sentinel://h1/m?sentinel_password=hunter2&ssl=1",
             "'sentinel://h1/m?sentinel_password=***&ssl=1' has an unknown option 'ssl'"),
            ("sentinel://h1/m?sentinel_db=1", "has an unknown sentinel option 'db'"),
            ("sentinel://h1:0/m", "has a bad sentinel address 'h1:0'"),
            ("sentinel:///m", "names no sentinel"),
            ("sentinel://h1", "names no master"),
            ("sentinel://h1/m/0/1", "names no master"),
            ("sentinel://h1/m?socket_timeout=0", "has a bad option socket_timeout='0'"),
            ({"sentinels": [("h1", 26379)], "service_name": "m", "password": "hunter2",
              "db": -1}, "'password': '***', 'db': -1} has a bad option db=-1"),
            ({"sentinels": "h1:26379", "service_name": "m"}, "must have 'sentinels'"),
            ({"sentinels": [("h1", 26379)]}, "must have 'service_name'"),
            ({"sentinels": [("h1", 26379)], "service_name": "m",
              "sentinel_kwargs": {"password": "hunter2", "ssl": True}},
             "has an unknown sentinel option 'ssl'"),
            ({"sentinels": [("h1", 26379)], "service_name": "m", "password": 7},
             "has a bad option password=***"),
        ]
        for entry, message in cases:
            with self.subTest(entry=entry), self.assertRaises(ImproperlyConfigured) as caught:
                self.build([entry])
            self.assertIn(message, str(caught.exception))
            self.assertNotIn("hunter2", str(caught.exception))

    def test_system_check_names_a_bad_sentinel_entry(self):
        hosts = ["redis://127.0.0.1", "sentinel://:hunter2@127.0.0.1/mymaster?dbb=1"]
        with override_settings(CHANNEL_BACKENDS={"default": {
                "BACKEND": "channels.backends.redis.RedisChannelBackend", "HOSTS": hosts}}):
            errors = check_channel_backends()
        self.assertEqual([error.id for error in errors], ["channels.E001"])
        self.assertIn("['HOSTS'][1] = 'sentinel://:***@127.0.0.1/mymaster?dbb=1' has an "
                      "unknown option 'dbb'", errors[0].msg)

    def test_bad_prefix(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "['PREFIX'] must be a str"):
            create_backend("default", {
                "BACKEND": "channels.backends.redis.RedisChannelBackend", "PREFIX": 3})


class UnreachableTests(SimpleTestCase):
    def test_unreachable_redis_fails_fast(self):
        server = shared_servers(1)[0]
        with socket.socket() as probe:  # a port that nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        backend = create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": [("127.0.0.1", port)]})
        self.addCleanup(backend.close)
        for call in (lambda: backend.send("q", {}),
                     lambda: backend.receive_many_blocking(["q"], 5),
                     lambda: backend.send(new_name("!x"), {}),
                     lambda: backend.group_add("g", "q")):
            started = time.monotonic()
            with self.assertRaisesMessage(ChannelBackendUnavailable,
                                          f"127.0.0.1:{port} of channel backend 'default'"):
                call()
            self.assertLess(time.monotonic() - started, 1.0)
        self.assertTrue(server.running)

    def test_something_else_on_the_port(self):
        listener = socket.create_server(("127.0.0.1", 0))
        self.addCleanup(listener.close)

        def answer():
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:
                    return
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                connection.close()

        threading.Thread(target=answer, daemon=True).start()
        backend = create_backend("default", {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": [listener.getsockname()]})
        self.addCleanup(backend.close)
        started = time.monotonic()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.send("q", {})
        self.assertLess(time.monotonic() - started, 1.0)


class ScalingDocTests(SimpleTestCase):
    def test_configuration_example_builds_a_backend(self):
        """The CHANNEL_BACKENDS example of docs/scaling.rst is valid."""
        with open(os.path.join(ROOT, "docs", "scaling.rst")) as doc:
            text = doc.read()
        block = text.split(".. code-block:: python\n\n", 1)[1].split("\n\n``HOSTS``")[0]
        namespace = {}
        exec(textwrap.dedent(block), namespace)
        config = namespace["CHANNEL_BACKENDS"]["default"]
        backend = create_backend("default", config)
        self.assertEqual(len(backend.addresses), 3)
        self.assertEqual(backend.capacity_for(new_name("!websocket.send")), 20)
        self.assertEqual(backend.capacity_for(new_name("http.request.body")), 4)
        self.assertEqual(backend.addresses[0].options["password"], "s3cret")
