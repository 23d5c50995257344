"""Channel, Group and Message: the handles users work with."""

from django.test import SimpleTestCase, override_settings

import channels
from channels import DEFAULT_CHANNEL_BACKEND, Channel, Group, channel_backends
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import InvalidChannelName
from channels.message import Message
from channels.testing import isolated_channel_backends

MEMORY = "channels.backends.memory.InMemoryChannelBackend"


class ChannelTests(SimpleTestCase):
    def setUp(self):
        isolation = isolated_channel_backends()
        isolation.__enter__()
        self.addCleanup(isolation.__exit__, None, None, None)

    def test_public_names(self):
        self.assertEqual(DEFAULT_CHANNEL_BACKEND, "default")
        self.assertIs(channels.channel_backends, channel_backends)
        with self.assertRaisesMessage(AttributeError, "no attribute 'Nope'"):
            channels.Nope  # noqa: B018

    def test_send_goes_to_the_configured_backend(self):
        Channel("test.send").send({"a": 1})
        self.assertEqual(channel_backends["default"].receive_many(["test.send"]),
                         ("test.send", {"a": 1}))

    def test_explicit_backend(self):
        backend = InMemoryChannelBackend()
        Channel("x", channel_backend=backend).send({"b": 2})
        self.assertEqual(backend.receive_many(["x"]), ("x", {"b": 2}))
        self.assertEqual(channel_backends["default"].receive_many(["x"]), (None, None))

    def test_channel_made_early_follows_settings(self):
        channel = Channel("test.later")
        other = {"default": {"BACKEND": MEMORY}, "second": {"BACKEND": MEMORY}}
        with override_settings(CHANNEL_BACKENDS=other):
            channel.send({})
            Channel("test.later", alias="second").send({"second": True})
            self.assertEqual(channel_backends["default"].receive_many(["test.later"])[1], {})
            self.assertEqual(channel_backends["second"].receive_many(["test.later"])[1],
                             {"second": True})

    def test_name_str_equality_hash(self):
        self.assertEqual(str(Channel("a.b")), "a.b")
        self.assertEqual(Channel("a.b"), Channel("a.b"))
        self.assertNotEqual(Channel("a.b"), Channel("a.c"))
        self.assertNotEqual(Channel("a.b"), "a.b")
        self.assertEqual(len({Channel("a.b"), Channel("a.b")}), 1)
        self.assertEqual(repr(Channel("a.b")), "<Channel 'a.b'>")
        self.assertEqual(Channel("a.b").name, "a.b")

    def test_invalid_names_are_refused_at_once(self):
        with self.assertRaises(InvalidChannelName):
            Channel("bad name")
        with self.assertRaisesMessage(InvalidChannelName, "Invalid group name"):
            Group("bad name")

    def test_new_name(self):
        name = Channel.new_name("!websocket.send")
        self.assertTrue(name.startswith("!websocket.send."))
        self.assertEqual(len(name.rsplit("-", 1)[1]), 32)  # 128 random bits


class GroupTests(SimpleTestCase):
    def setUp(self):
        self.backend = InMemoryChannelBackend()
        self.group = Group("room", channel_backend=self.backend)

    def test_add_send_discard(self):
        self.group.add(Channel("one"))
        self.group.add("two")
        self.assertEqual(sorted(self.group.channels()), ["one", "two"])
        self.group.send({"hello": True})
        self.assertEqual(self.backend.receive_many(["one"])[1], {"hello": True})
        self.assertEqual(self.backend.receive_many(["two"])[1], {"hello": True})
        self.group.discard(Channel("one"))
        self.assertEqual(self.group.channels(), ["two"])
        self.assertEqual(repr(self.group), "<Group 'room'>")

    def test_add_with_expiry(self):
        import time

        self.group.add("short", expiry=0.02)
        self.group.add("long")
        time.sleep(0.03)
        self.assertEqual(self.group.channels(), ["long"])


class MessageTests(SimpleTestCase):
    def test_fields(self):
        backend = InMemoryChannelBackend()
        reply = Channel.new_name("!reply")
        message = Message({"reply_channel": reply, "text": "hi"}, "websocket.receive", backend)
        self.assertEqual(message.channel, Channel("websocket.receive"))
        self.assertEqual(message.reply_channel, Channel(reply))
        self.assertIs(message.reply_channel.channel_backend, backend)
        self.assertIs(message.channel_backend, backend)
        self.assertEqual(message["text"], "hi")
        self.assertEqual(message.get("missing", 1), 1)
        self.assertEqual(message.content["text"], "hi")
        self.assertEqual(repr(message), "<Message on 'websocket.receive'>")

    def test_no_reply_channel(self):
        message = Message({}, "x", InMemoryChannelBackend())
        self.assertIsNone(message.reply_channel)

    def test_reply_channel_must_be_valid(self):
        with self.assertRaises(InvalidChannelName):
            Message({"reply_channel": "bad name"}, "x", InMemoryChannelBackend())

    def test_requeue_is_an_exception(self):
        self.assertTrue(issubclass(Message.Requeue, Exception))
