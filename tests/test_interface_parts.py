"""The interface server's parts on their own: options, Host/Origin policy,
keepalive spreading and runwsserver's arguments (the layer bridge:
test_layer_bridge.py)."""

from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.test import SimpleTestCase, override_settings
from twisted.internet.task import Clock

from channels.interfaces.config import ServerConfig
from channels.interfaces.keepalive import KeepaliveScheduler
from channels.interfaces.security import HostPolicy, forwarded_client, forwarded_secure
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

    @override_settings(CHANNELS_ALLOWED_ORIGINS=["https://a.example", ".b.example"])
    def test_allowed_origins_setting(self):
        self.assertEqual(ServerConfig.from_settings().allowed_origins,
                         ["https://a.example", ".b.example"])


class HostPolicyTests(SimpleTestCase):
    def test_hosts(self):
        policy = HostPolicy(["example.com", ".example.org"])
        self.assertTrue(policy.host_allowed("example.com:8000"))
        self.assertTrue(policy.host_allowed("www.example.org"))
        self.assertFalse(policy.host_allowed("evil.com"))
        self.assertFalse(policy.host_allowed(None))
        self.assertFalse(policy.host_allowed("example.com@evil.com"))

    def test_origins_default_to_allowed_hosts(self):
        policy = HostPolicy(["example.com"])
        self.assertTrue(policy.origin_allowed("https://example.com"))
        self.assertTrue(policy.origin_allowed("http://example.com:8000"))
        self.assertTrue(policy.origin_allowed(None))
        self.assertFalse(policy.origin_allowed("https://example.com.evil.net"))
        self.assertFalse(policy.origin_allowed("null"))
        self.assertFalse(policy.origin_allowed("file://example.com"))

    def test_explicit_origins(self):
        policy = HostPolicy(["example.com"], ["https://app.example.com", ".cdn.example"])
        self.assertTrue(policy.origin_allowed("https://app.example.com"))
        self.assertFalse(policy.origin_allowed("http://app.example.com"))
        self.assertTrue(policy.origin_allowed("https://x.cdn.example"))
        self.assertFalse(policy.origin_allowed("https://example.com"))

    def test_forwarded_headers(self):
        self.assertEqual(forwarded_client({"x-forwarded-for": "1.1.1.1, 2.2.2.2"}, ["h", 1]),
                         ["2.2.2.2", 0])
        self.assertEqual(forwarded_client({}, ["h", 1]), ["h", 1])
        self.assertTrue(forwarded_secure({"x-forwarded-proto": "https"}, False))
        self.assertFalse(forwarded_secure({"x-forwarded-proto": "http"}, True))
        self.assertTrue(forwarded_secure({"x-forwarded-proto": "gopher"}, True))


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
