"""The system checks that report a misconfigured channel layer or interface
server at startup."""

from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from channels.checks import (
    check_channel_backends,
    check_keepalive_routed,
    check_origin_settings,
    check_origins_with_any_host,
    check_server_settings,
    check_session_settings,
)

MEMORY = "channels.backends.memory.InMemoryChannelBackend"


class CheckTests(SimpleTestCase):
    def test_valid_settings_pass(self):
        self.assertEqual(check_channel_backends(), [])

    @override_settings(CHANNEL_BACKENDS={
        "default": {"BACKEND": MEMORY},
        "broken": {"BACKEND": MEMORY, "ROUTING": "tests.nothing.routing"},
        "typo": {"BACKEND": MEMORY, "CAPACTY": 3},
    })
    def test_each_bad_alias_is_an_error(self):
        errors = check_channel_backends()
        self.assertEqual([e.id for e in errors], ["channels.E001", "channels.E001"])
        self.assertIn("'broken'", errors[0].msg)
        self.assertIn("'typo'", errors[1].msg)
        self.assertIn("CAPACTY", errors[1].msg)

    @override_settings(CHANNEL_BACKENDS="not a dict")
    def test_bad_setting_shape(self):
        errors = check_channel_backends()
        self.assertEqual(len(errors), 1)
        self.assertIn("CHANNEL_BACKENDS must be a dict", errors[0].msg)

    @override_settings(CHANNEL_BACKENDS={"default": {"BACKEND": "nope.Backend"}})
    def test_registered_and_stops_manage_check(self):
        self.assertTrue(any(e.id == "channels.E001" for e in checks.run_checks()))
        with self.assertRaisesMessage(SystemCheckError, "nope.Backend"):
            call_command("check")


class OriginSettingsCheckTests(SimpleTestCase):
    """channels.W002: the allowed origins set in two places."""

    def test_one_place_is_quiet(self):
        self.assertEqual(check_origin_settings(), [])
        with override_settings(CHANNELS_ALLOWED_ORIGINS=["https://*.example.com"]):
            self.assertEqual(check_origin_settings(), [])
        with override_settings(CHANNELS_SERVER={"ALLOWED_ORIGINS": ["https://*.example.com"]}):
            self.assertEqual(check_origin_settings(), [])

    def test_both_places_warn_which_wins(self):
        for key in ("ALLOWED_ORIGINS", "allowed_origins"):
            with override_settings(CHANNELS_ALLOWED_ORIGINS=["https://*.example.com"],
                                   CHANNELS_SERVER={key: ["https://*.example.org"]}):
                (warning,) = check_origin_settings()
            self.assertEqual(warning.id, "channels.W002")
            self.assertIn("CHANNELS_SERVER['ALLOWED_ORIGINS'] is ignored", warning.msg)


class ServerSettingsCheckTests(SimpleTestCase):
    """channels.E004: CHANNELS_SERVER and CHANNELS_ALLOWED_ORIGINS."""

    def test_default_and_valid_settings_pass(self):
        self.assertEqual(check_server_settings(), [])
        with override_settings(
                CHANNELS_SERVER={"HTTP_TIMEOUT": 5, "max_body_size": 1000, "PING_INTERVAL": 0,
                                 "SHUTDOWN_TIMEOUT": 0, "PROXY_HEADERS": True,
                                 "ROOT_PATH": "/app",
                                 "ALLOWED_ORIGINS": ("https://*.example.com",)},
                CHANNELS_ALLOWED_ORIGINS=["https://app.example.com"]):
            self.assertEqual(check_server_settings(), [])

    @override_settings(CHANNELS_SERVER={
        "HTTP_TIMOUT": 5, "ACCESS_LOG": "/tmp/log", "BODY_TIMEOUT": "30",
        "MAX_BODY_SIZE": 1.5, "MAX_CONNECTIONS": 0, "PING_INTERVAL": -1,
        "CONNECT_TIMEOUT": True, "PROXY_HEADERS": "yes", "ROOT_PATH": "app",
        "MAX_RESPONSE_BUFFER": 65536, "SHUTDOWN_TIMEOUT": -5, "WEBSOCKET_KEEPALIVE": 1,
        "MAX_WEBSOCKET_BUFFER": 1000, "MAX_MESSAGES_IN_FLIGHT": 0,
    }, CHANNELS_ALLOWED_ORIGINS="https://app.example.com")
    def test_each_bad_option_is_an_error_with_a_hint(self):
        found = check_server_settings()
        self.assertEqual({error.id for error in found}, {"channels.E004"})
        errors = {error.msg: error.hint for error in found}
        typo = errors.pop("CHANNELS_SERVER has unknown option 'HTTP_TIMOUT'")
        self.assertTrue(typo.startswith("Did you mean 'HTTP_TIMEOUT'? The options are "
                                        "ALLOWED_ORIGINS, BODY_TIMEOUT, "), typo)
        self.assertNotIn("ACCESS_LOG", typo)
        self.assertEqual(errors, {
            "CHANNELS_SERVER has unknown option 'ACCESS_LOG'":
                "ACCESS_LOG is set with runwsserver --access-log only.",
            "CHANNELS_SERVER['BODY_TIMEOUT'] must be a number, not '30'":
                "Give a number; the default is 30.0.",
            "CHANNELS_SERVER['CONNECT_TIMEOUT'] must be a number, not True":
                "Give a number; the default is 5.0.",
            "CHANNELS_SERVER['MAX_BODY_SIZE'] must be a whole number, not 1.5":
                "Give a whole number; the default is 67108864.",
            "CHANNELS_SERVER['MAX_CONNECTIONS'] must be above 0, not 0":
                "Give a positive number; the default is 20000.",
            "CHANNELS_SERVER['PING_INTERVAL'] must be at least 0, not -1":
                "Give 0 or more; the default is 45.0.",
            "CHANNELS_SERVER['MAX_RESPONSE_BUFFER'] must be at least 1048576, not 65536":
                "Give 1048576 or more; the default is 4194304.",
            "CHANNELS_SERVER['MAX_WEBSOCKET_BUFFER'] must be at least 1048576, not 1000":
                "Give 1048576 or more; the default is 4194304.",
            "CHANNELS_SERVER['MAX_MESSAGES_IN_FLIGHT'] must be above 0, not 0":
                "Give a positive number; the default is 4.",
            "CHANNELS_SERVER['SHUTDOWN_TIMEOUT'] must be at least 0, not -5":
                "Give 0 or more; the default is 30.0.",
            "CHANNELS_SERVER['PROXY_HEADERS'] must be True or False, not 'yes'":
                "Give True or False; the default is False.",
            "CHANNELS_SERVER['WEBSOCKET_KEEPALIVE'] must be True or False, not 1":
                "Give True or False; the default is False.",
            "CHANNELS_SERVER['ROOT_PATH'] must be '' or a path starting with '/', not 'app'":
                "Give the path the site is served under, such as '/app'.",
            "CHANNELS_ALLOWED_ORIGINS must be a list of origins, not 'https://app.example.com'":
                "Give a list such as ['https://app.example.com', 'https://*.example.com'], "
                "or None for each request's own origin and CSRF_TRUSTED_ORIGINS.",
        })

    @override_settings(CHANNELS_SERVER={"ALLOWED_ORIGINS": [
        ".example.com", "https://ok.example", "ftp://x.example", "https://x.example/path", "*"]})
    def test_origins_need_a_scheme_and_nothing_after_the_port(self):
        [error] = check_server_settings()
        self.assertEqual(error.id, "channels.E004")
        self.assertEqual(error.msg, (
            "CHANNELS_SERVER['ALLOWED_ORIGINS'] has entries that are not origins: "
            "'.example.com' is not an origin: give the scheme too, such as "
            "'https://example.com'; 'ftp://x.example' is not an origin of the form "
            "http(s)://host[:port]; 'https://x.example/path' is not an origin of the form "
            "http(s)://host[:port]"))

    @override_settings(CHANNELS_SERVER=[("HTTP_TIMEOUT", 5)])
    def test_setting_that_is_not_a_dict(self):
        [error] = check_server_settings()
        self.assertEqual(error.msg, "CHANNELS_SERVER must be a dict of option to value, not list")

    @override_settings(CHANNELS_SERVER={"HTTP_TIMEOUT": -1})
    def test_registered_and_stops_runwsserver_before_it_starts(self):
        self.assertIn(check_server_settings, checks.registry.registry.get_checks())
        with self.assertRaisesMessage(SystemCheckError, "CHANNELS_SERVER['HTTP_TIMEOUT']"):
            call_command("check")
        # runwsserver runs the checks first: every problem, with its hint.
        with self.assertRaisesMessage(SystemCheckError, "HINT: Give a positive number"):
            call_command("runwsserver", "127.0.0.1:0", skip_checks=False)


class AnyHostOriginCheckTests(SimpleTestCase):
    """channels.W003: ALLOWED_HOSTS ['*'] without explicit origins."""

    def test_warns_only_for_any_host_without_origins(self):
        self.assertEqual(check_origins_with_any_host(), [])
        with override_settings(ALLOWED_HOSTS=["*"]):
            [warning] = check_origins_with_any_host()
        self.assertEqual(warning.id, "channels.W003")
        with override_settings(ALLOWED_HOSTS=["*"],
                               CHANNELS_SERVER={"ALLOWED_ORIGINS": ["https://example.com"]}):
            self.assertEqual(check_origins_with_any_host(), [])


class KeepaliveRoutedCheckTests(SimpleTestCase):
    """channels.W004: a keepalive consumer that no server would ever feed."""

    def backends(self, routing):
        return {"default": {"BACKEND": MEMORY, "ROUTING": routing}}

    def test_warns_for_a_routed_keepalive_with_keepalives_off(self):
        with override_settings(CHANNEL_BACKENDS=self.backends("tests.session_consumers.routing")):
            [warning] = check_keepalive_routed()
            self.assertEqual(warning.id, "channels.W004")
            self.assertIn("'default'", warning.msg)
            with override_settings(CHANNELS_SERVER={"WEBSOCKET_KEEPALIVE": True}):
                self.assertEqual(check_keepalive_routed(), [])
        # No keepalive consumer: nothing to say.
        with override_settings(CHANNEL_BACKENDS=self.backends("tests.liveness_consumers.routing")):
            self.assertEqual(check_keepalive_routed(), [])


class SessionSettingsCheckTests(SimpleTestCase):
    """channels.E005: CHANNELS_SESSION_AGE."""

    def test_positive_number_of_seconds(self):
        self.assertEqual(check_session_settings(), [])
        with override_settings(CHANNELS_SESSION_AGE=30):
            self.assertEqual(check_session_settings(), [])
        for bad in (0, -1, "300", True):
            with override_settings(CHANNELS_SESSION_AGE=bad):
                [error] = check_session_settings()
            self.assertEqual(error.id, "channels.E005")
