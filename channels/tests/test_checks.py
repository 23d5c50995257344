"""The system check that reports a misconfigured channel layer at startup."""

from django.core import checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import SimpleTestCase, override_settings

from channels.checks import check_channel_backends

MEMORY = "channels.backends.memory.InMemoryChannelBackend"


class CheckTests(SimpleTestCase):
    def test_valid_settings_pass(self):
        self.assertEqual(check_channel_backends(), [])

    @override_settings(CHANNEL_BACKENDS={
        "default": {"BACKEND": MEMORY},
        "broken": {"BACKEND": MEMORY, "ROUTING": "channels.tests.nothing.routing"},
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
