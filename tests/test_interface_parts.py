"""The interface server's parts on their own: options, Host/Origin policy,
keepalive spreading and runwsserver's arguments (the layer bridge:
test_layer_bridge.py)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings
from twisted.internet.task import Clock

from channels.interfaces.config import ServerConfig
from channels.interfaces.keepalive import KeepaliveScheduler
from channels.interfaces.security import (
    HOSTS_DECIDED_KEPT,
    BadProxyHeader,
    HostPolicy,
    forwarded_client,
    forwarded_secure,
    trusted_origins,
)
from channels.management.commands.runwsserver import Command


class ConfigTests(SimpleTestCase):
    def test_defaults_settings_then_overrides(self):
        self.assertEqual(ServerConfig.from_settings().http_timeout, 60)
        self.assertEqual(ServerConfig.from_settings().shutdown_timeout, 30)  # as gunicorn's
        with override_settings(CHANNELS_SERVER={"HTTP_TIMEOUT": 9, "MAX_BODY_SIZE": 10}):
            config = ServerConfig.from_settings(http_timeout=3, max_body_size=None)
        self.assertEqual((config.http_timeout, config.max_body_size), (3, 10))

    def test_bad_settings_are_named(self):
        with override_settings(CHANNELS_SERVER={"HTTP_TIMOUT": 9}), \
                self.assertRaisesMessage(ImproperlyConfigured, "'HTTP_TIMOUT'"):
            ServerConfig.from_settings()
        with override_settings(CHANNELS_SERVER={"HTTP_TIMEOUT": "soon"}), \
                self.assertRaisesMessage(ImproperlyConfigured, "HTTP_TIMEOUT"):
            ServerConfig.from_settings()
        with self.assertRaisesMessage(ImproperlyConfigured, "MAX_CONNECTIONS"):
            ServerConfig.from_settings(max_connections=0)

    @override_settings(CHANNELS_SERVER={"HTTP_TIMEOUT": "soon", "MAX_BODY_SIZE": -1})
    def test_every_problem_is_named_and_an_option_replaces_a_bad_setting(self):
        # The system check (channels.E004) reports these too, one by one.
        with self.assertRaises(ImproperlyConfigured) as raised:
            ServerConfig.from_settings()
        self.assertEqual(str(raised.exception).splitlines(), [
            "CHANNELS_SERVER['HTTP_TIMEOUT'] must be a number, not 'soon'. "
            "Give a number; the default is 60.0.",
            "CHANNELS_SERVER['MAX_BODY_SIZE'] must be at least 0, not -1. "
            "Give 0 or more; the default is 67108864.",
        ])
        config = ServerConfig.from_settings(http_timeout=3, max_body_size=10)
        self.assertEqual((config.http_timeout, config.max_body_size), (3, 10))

    @override_settings(CHANNELS_ALLOWED_ORIGINS=["https://a.example", "https://*.b.example"])
    def test_allowed_origins_setting(self):
        self.assertEqual(ServerConfig.from_settings().allowed_origins,
                         ["https://a.example", "https://*.b.example"])


class HostPolicyTests(SimpleTestCase):
    def test_hosts(self):
        policy = HostPolicy(["example.com", ".example.org"])
        self.assertTrue(policy.host_allowed("example.com:8000"))
        self.assertTrue(policy.host_allowed("www.example.org"))
        self.assertFalse(policy.host_allowed("evil.com"))
        self.assertFalse(policy.host_allowed(None))
        self.assertFalse(policy.host_allowed("example.com@evil.com"))
        # Decided once, then looked up, with the same answers; the memo
        # stays within bounds whatever Host headers clients make up.
        self.assertTrue(policy.host_allowed("example.com:8000"))
        self.assertFalse(policy.host_allowed("evil.com"))
        for number in range(HOSTS_DECIDED_KEPT * 2):
            self.assertFalse(policy.host_allowed(f"evil{number}.com"))
        self.assertLessEqual(policy.decided.cache_info().currsize, HOSTS_DECIDED_KEPT)
        self.assertTrue(policy.host_allowed("www.example.org"))

    def test_own_origin_is_scheme_host_and_port(self):
        policy = HostPolicy(["example.com", "127.0.0.1"])
        self.assertTrue(policy.origin_allowed("http://example.com", False, "example.com"))
        self.assertTrue(policy.origin_allowed("http://example.com:80", False, "example.com"))
        self.assertTrue(policy.origin_allowed("https://example.com", True, "example.com"))
        self.assertTrue(policy.origin_allowed("HTTP://Example.COM:8000", False,
                                              "example.com:8000"))
        self.assertTrue(policy.origin_allowed(None, False, "example.com"))
        # The attacks of issue 17: another port, another scheme, another host.
        for origin in ("http://127.0.0.1:9999", "https://localhost", "https://127.0.0.1:8000",
                       "http://example.com:8000", "https://example.com.evil.net", "null",
                       "file://example.com", "http://user@example.com",
                       "http://example.com/path", "http://example.com:99999", ""):
            self.assertFalse(policy.origin_allowed(origin, False, "127.0.0.1:8000"), origin)
        self.assertFalse(policy.origin_allowed("http://example.com", True, "example.com"))
        self.assertFalse(policy.origin_allowed("https://example.com", False, "example.com"))

    @override_settings(CSRF_TRUSTED_ORIGINS=["https://*.trusted.example"])
    def test_csrf_trusted_origins_when_nothing_else_is_set(self):
        policy = HostPolicy(["example.com"], trusted_origins(None))
        self.assertTrue(policy.origin_allowed("https://a.trusted.example", True, "example.com"))
        self.assertTrue(policy.origin_allowed("https://trusted.example", True, "example.com"))
        self.assertFalse(policy.origin_allowed("http://a.trusted.example", True, "example.com"))
        self.assertFalse(policy.origin_allowed("https://a.trusted.example:8443", True,
                                               "example.com"))
        self.assertEqual(trusted_origins(["https://x.example"]), ["https://x.example"])

    def test_explicit_origins_replace_the_own_origin(self):
        policy = HostPolicy(["example.com"], ["https://app.example.com",
                                              "https://*.cdn.example:8443"], own_origin=False)
        self.assertTrue(policy.origin_allowed("https://app.example.com"))
        self.assertTrue(policy.origin_allowed("https://app.example.com:443"))
        self.assertFalse(policy.origin_allowed("http://app.example.com"))
        self.assertTrue(policy.origin_allowed("https://x.cdn.example:8443"))
        self.assertFalse(policy.origin_allowed("https://x.cdn.example"))
        self.assertFalse(policy.origin_allowed("https://example.com", True, "example.com"))
        anything = HostPolicy(["example.com"], ["*"], own_origin=False)
        self.assertTrue(anything.origin_allowed("null"))

    def test_forwarded_headers(self):
        self.assertEqual(forwarded_client({"x-forwarded-for": "1.1.1.1, 2.2.2.2"}, ["h", 1]),
                         ["2.2.2.2", 0])
        self.assertEqual(forwarded_client({"x-forwarded-for": "::1",
                                           "x-forwarded-port": "8443"}, ["h", 1]),
                         ["::1", 8443])
        self.assertEqual(forwarded_client({}, ["h", 1]), ["h", 1])
        self.assertTrue(forwarded_secure({"x-forwarded-proto": "https"}, False))
        self.assertTrue(forwarded_secure({"x-forwarded-proto": "http, WSS"}, False))
        self.assertFalse(forwarded_secure({"x-forwarded-proto": "http"}, True))
        self.assertTrue(forwarded_secure({}, True))

    def test_bad_forwarded_headers_are_refused(self):
        bad = [("x-forwarded-port", "\u00b2"), ("x-forwarded-port", "1" * 30),
               ("x-forwarded-port", "0"), ("x-forwarded-port", "65536"),
               ("x-forwarded-port", "+80"), ("x-forwarded-port", " "),
               ("x-forwarded-port", "\u0661\u0662"),
               ("x-forwarded-for", "evil.example"), ("x-forwarded-for", "1.2.3.4:80"),
               ("x-forwarded-for", "1.2.3.4, "), ("x-forwarded-for", "1.1.1.1," * 200),
               ("x-forwarded-for", "999.1.1.1")]
        for name, value in bad:
            headers = {"x-forwarded-for": "1.2.3.4", name: value}
            with self.assertRaises(BadProxyHeader, msg=(name, value)):
                forwarded_client(headers, None)
        for value in ("gopher", "", "https\x00"):
            with self.assertRaises(BadProxyHeader, msg=value):
                forwarded_secure({"x-forwarded-proto": value}, False)


class Socket:
    def __init__(self, log, clock):
        self.log, self.clock = log, clock

    def keepalive(self):
        self.log.append((self.clock.seconds(), self))


class KeepaliveTests(SimpleTestCase):
    def test_each_socket_once_per_interval_spread_evenly(self):
        clock, log = Clock(), []
        scheduler = KeepaliveScheduler(clock, 10)
        sockets = [Socket(log, clock) for _ in range(100)]
        for sock in sockets:
            scheduler.add(sock)
        scheduler.discard(sockets.pop())
        scheduler.start()
        for _ in range(20):
            clock.advance(1)
        per_tick = {}
        for when, _ in log:
            per_tick[when] = per_tick.get(when, 0) + 1
        # 99 sockets over 10 one-second ticks: never more than 10 at once.
        self.assertLessEqual(max(per_tick.values()), 10)
        self.assertEqual(len(per_tick), 20)
        counts = {sock: 0 for sock in sockets}
        for _, sock in log:
            counts[sock] += 1
        self.assertEqual(set(counts.values()), {2})
        scheduler.stop()


class RunWsServerArgumentTests(SimpleTestCase):
    def test_addrport(self):
        self.assertEqual(Command.address(None, None, None), ("127.0.0.1", 8000))
        self.assertEqual(Command.address("8001", None, None), ("127.0.0.1", 8001))
        self.assertEqual(Command.address("0.0.0.0:80", None, None), ("0.0.0.0", 80))
        self.assertEqual(Command.address("[::1]:80", None, None), ("::1", 80))
        self.assertEqual(Command.address("80", "10.0.0.1", 81), ("10.0.0.1", 81))
        with self.assertRaises(CommandError):
            Command.address("nope:", None, None)
        with self.assertRaises(CommandError):
            Command.address(None, None, 70000)

    @override_settings(CHANNEL_BACKENDS={"default": {
        "BACKEND": "tests.support.backends.SharedMemoryBackend"}},
        CHANNELS_SERVER={"NOPE": 1})
    def test_bad_server_setting_is_a_command_error(self):
        with self.assertRaisesMessage(CommandError, "NOPE"):
            call_command("runwsserver", "127.0.0.1:0")

    @override_settings(CHANNEL_BACKENDS={"default": {
        "BACKEND": "tests.support.backends.SharedMemoryBackend"}})
    def test_bad_shutdown_timeout_is_a_command_error(self):
        with self.assertRaisesMessage(CommandError, "SHUTDOWN_TIMEOUT must be at least 0"):
            call_command("runwsserver", "127.0.0.1:0", "--shutdown-timeout", "-1")
