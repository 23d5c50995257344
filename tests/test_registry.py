"""The routing registry: ROUTING, @consumer, autodiscovery, defaults."""

from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase

from channels import channel_backends, registry
from channels.consumers import echo
from channels.decorators import consumer
from channels.exceptions import InvalidChannelName
from channels.registry import ConsumerRegistry
from tests.testapp import consumers as testapp_consumers


def first(message):
    pass


def second(message):
    pass


class RegistryTests(SimpleTestCase):
    def setUp(self):
        saved = list(registry.decorated)
        self.addCleanup(registry.decorated.__setitem__, slice(None), saved)

    def test_routing_with_callables_and_paths(self):
        reg = ConsumerRegistry({"a": first, "b": "tests.test_registry.second"})
        self.assertIs(reg.consumer_for_channel("a"), first)
        self.assertIs(reg.consumer_for_channel("b"), second)
        self.assertIsNone(reg.consumer_for_channel("c"))

    def test_builtin_echo_unless_routed(self):
        self.assertIs(ConsumerRegistry().consumer_for_channel("__channels__.echo"), echo)
        reg = ConsumerRegistry({"__channels__.echo": first})
        self.assertIs(reg.consumer_for_channel("__channels__.echo"), first)

    def test_decorator_registers_for_its_alias(self):
        consumer("test.decorated")(first)
        consumer("test.other", alias="second")(second)
        reg = ConsumerRegistry()
        self.assertIs(reg.consumer_for_channel("test.decorated"), first)
        self.assertIsNone(reg.consumer_for_channel("test.other"))
        self.assertIs(ConsumerRegistry(alias="second").consumer_for_channel("test.other"),
                      second)

    def test_decorator_takes_several_channels_and_returns_the_function(self):
        self.assertIs(consumer("test.x", "test.y")(first), first)
        self.assertEqual(
            [c for c in ConsumerRegistry().all_channel_names() if c.startswith("test.")],
            ["test.x", "test.y"])

    def test_two_consumers_on_one_channel_names_both(self):
        consumer("test.clash", alias="main")(second)
        with self.assertRaises(ImproperlyConfigured) as cm:
            ConsumerRegistry({"test.clash": first}, alias="main")
        message = str(cm.exception)
        for part in ("'test.clash'", "tests.test_registry.first",
                     "tests.test_registry.second", "'main'"):
            self.assertIn(part, message)

    def test_same_consumer_twice_is_fine(self):
        consumer("test.same")(first)
        reg = ConsumerRegistry({"test.same": first})
        self.assertIs(reg.consumer_for_channel("test.same"), first)

    def test_decorator_errors(self):
        with self.assertRaisesMessage(TypeError, "at least one channel name"):
            consumer()
        with self.assertRaises(InvalidChannelName):
            consumer("bad name")
        with self.assertRaisesMessage(TypeError, "not a str"):
            ConsumerRegistry().add_consumer(first, "test.a")

    def test_app_consumers_are_autodiscovered(self):
        reg = channel_backends["default"].registry
        self.assertIs(reg.consumer_for_channel("testapp.greet"), testapp_consumers.greet)
        self.assertIs(reg.consumer_for_channel("testapp.fail"), testapp_consumers.fail)
        # ...alongside the project's ROUTING.
        self.assertIs(reg.consumer_for_channel("tests.echo"), echo)
