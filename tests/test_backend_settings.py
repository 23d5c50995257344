"""CHANNEL_BACKENDS: defaults, override_settings, and every configuration error."""

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, override_settings

from channels.backends import channel_backends, create_backend
from channels.backends.memory import InMemoryChannelBackend

MEMORY = "channels.backends.memory.InMemoryChannelBackend"


def not_a_consumer_dict():
    return None


class DefaultsTests(SimpleTestCase):
    def tearDown(self):
        channel_backends.reset()

    def test_no_setting_means_in_memory_default(self):
        with override_settings(CHANNEL_BACKENDS=None):
            del settings.CHANNEL_BACKENDS
            channel_backends.reset()
            backend = channel_backends["default"]
            self.assertIsInstance(backend, InMemoryChannelBackend)
            self.assertEqual((backend.expiry, backend.capacity), (60, 100))
        self.assertIn("tests.echo", channel_backends["default"].registry.consumers)

    def test_backend_is_built_once(self):
        self.assertIs(channel_backends["default"], channel_backends["default"])
        self.assertIn("default", channel_backends)
        self.assertNotIn("other", channel_backends)

    def test_override_settings_picks_up_new_backends(self):
        before = channel_backends["default"]
        config = {"default": {"BACKEND": MEMORY, "EXPIRY": 5, "CAPACITY": 7,
                              "GROUP_EXPIRY": 9, "CHANNEL_CAPACITY": {"a.*": 2}}}
        with override_settings(CHANNEL_BACKENDS=config):
            backend = channel_backends["default"]
            self.assertIsNot(backend, before)
            self.assertEqual((backend.expiry, backend.capacity, backend.group_expiry),
                             (5, 7, 9))
            self.assertEqual(backend.capacity_for("a.b"), 2)
            self.assertEqual(backend.alias, "default")
        self.assertEqual(channel_backends["default"].expiry, 60)

    def test_unknown_alias(self):
        with self.assertRaisesMessage(ImproperlyConfigured,
                                      "No channel backend 'nope' in CHANNEL_BACKENDS "
                                      "(configured: default)"):
            channel_backends["nope"]  # noqa: B018


class ConfigurationErrorTests(SimpleTestCase):
    def assertError(self, config, *fragments):
        with self.assertRaises(ImproperlyConfigured) as cm:
            create_backend("myalias", config).registry  # noqa: B018
        for fragment in ("'myalias'",) + fragments:
            self.assertIn(fragment, str(cm.exception))

    def test_not_a_dict_or_no_backend(self):
        self.assertError("channels.backends.memory", "must be a dict with a 'BACKEND' key")
        self.assertError({"EXPIRY": 1}, "must be a dict with a 'BACKEND' key")

    def test_unknown_backend_path(self):
        self.assertError({"BACKEND": "channels.backends.nothing.Backend"},
                         "'channels.backends.nothing.Backend' could not be imported")
        self.assertError({"BACKEND": "nodots"}, "'nodots' could not be imported")

    def test_not_a_backend_class(self):
        self.assertError({"BACKEND": "django.http.HttpResponse"},
                         "'django.http.HttpResponse' is not a BaseChannelBackend subclass")
        self.assertError({"BACKEND": "channels.backends.create_backend"},
                         "is not a BaseChannelBackend subclass")

    def test_unknown_option(self):
        self.assertError({"BACKEND": MEMORY, "HOSTS": ["redis://"], "EXPIRE": 1},
                         "unknown option(s) EXPIRE, HOSTS", "it accepts", "CAPACITY")

    def test_bad_numbers(self):
        for option, value, kind in [
            ("EXPIRY", 0, "a positive number"), ("EXPIRY", -1, "a positive number"),
            ("EXPIRY", "60", "a positive number"), ("EXPIRY", True, "a positive number"),
            ("EXPIRY", None, "a positive number"), ("GROUP_EXPIRY", 0, "a positive number"),
            ("CAPACITY", 0, "a positive integer"), ("CAPACITY", 0.5, "a positive integer"),
            ("CAPACITY", 10.0, "a positive integer"), ("CAPACITY", "100", "a positive integer"),
        ]:
            with self.subTest(option=option, value=value):
                self.assertError({"BACKEND": MEMORY, option: value},
                                 f"['{option}'] must be {kind}, not {value!r}")

    def test_bad_channel_capacity(self):
        self.assertError({"BACKEND": MEMORY, "CHANNEL_CAPACITY": [("a", 1)]},
                         "'CHANNEL_CAPACITY'] must be a dict")
        self.assertError({"BACKEND": MEMORY, "CHANNEL_CAPACITY": {1: 1}},
                         "keys must be glob patterns")
        self.assertError({"BACKEND": MEMORY, "CHANNEL_CAPACITY": {"a.*": 0}},
                         "CHANNEL_CAPACITY['a.*']", "must be a positive integer")

    def test_routing_that_does_not_import(self):
        self.assertError({"BACKEND": MEMORY, "ROUTING": "tests.nothing.routing"},
                         "['ROUTING'] = 'tests.nothing.routing' does not import")

    def test_routing_that_is_not_a_dict(self):
        self.assertError({"BACKEND": MEMORY,
                          "ROUTING": "tests.test_backend_settings.not_a_consumer_dict"},
                         "must be a dict of channel name to consumer, not function")

    def test_routed_consumer_that_does_not_import_or_call(self):
        self.assertError({"BACKEND": MEMORY, "ROUTING": {"a": "tests.nope.consumer"}},
                         "cannot import consumer 'tests.nope.consumer'")
        self.assertError({"BACKEND": MEMORY, "ROUTING": {"a": 42}},
                         "consumer 42 is not callable")

    def test_invalid_channel_in_routing(self):
        for name in ("bad name", 7, "x" * 300):
            with self.subTest(name=name):
                self.assertError({"BACKEND": MEMORY, "ROUTING": {name: "channels.consumers.echo"}},
                                 "channels.consumers.echo")

    def test_channel_backends_must_be_a_dict(self):
        with override_settings(CHANNEL_BACKENDS=[("default", {"BACKEND": MEMORY})]):
            with self.assertRaisesMessage(ImproperlyConfigured,
                                          "CHANNEL_BACKENDS must be a dict"):
                channel_backends["default"]  # noqa: B018
