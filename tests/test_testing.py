"""ChannelTestCase used the way a project's tests use it."""

from django.contrib.auth.models import User
from django.test import override_settings

from channels import Channel, channel_backends
from channels.backends.memory import InMemoryChannelBackend
from channels.testing import ChannelTestCase
from channels.testing.cases import memory_backend_for

# The project's CHANNEL_BACKENDS, as a user's settings would have it.
CHAT = {
    "default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": "tests.testapp.routing.websocket_routing",
    }
}


# docs: start
@override_settings(CHANNEL_BACKENDS=CHAT)
class ChatTests(ChannelTestCase):
    def setUp(self):
        User.objects.create_user("alice", password="pw")
        self.client.login(username="alice", password="pw")

    def connect(self, cookies):
        reply = Channel.new_name("!websocket.send")
        self.send_and_consume("websocket.connect", {
            "reply_channel": reply, "path": "/chat/lobby/", "order": 0, "cookies": cookies,
        })
        return reply, self.get_next_message(reply, require=True)

    def test_logged_in_user_chats_in_room(self):
        reply, decision = self.connect({"sessionid": self.client.cookies["sessionid"].value})
        # The worker accepted the connection when the consumer returned.
        self.assertEqual(decision.content, {"accept": True})

        self.send_and_consume("websocket.receive", {
            "reply_channel": reply, "path": "/chat/lobby/", "order": 1, "text": "hi",
        })
        self.assertEqual(self.get_next_message(reply, require=True)["text"], "alice: hi")

        self.send_and_consume("websocket.disconnect", {
            "reply_channel": reply, "path": "/chat/lobby/", "order": 2, "code": 1000,
        })
        self.assertEqual(self.get_backend().group_channels("room-lobby"), [])

    def test_anonymous_socket_is_rejected(self):
        reply, decision = self.connect(cookies={})
        self.assertEqual(decision.content, {"accept": False})
# docs: end

    def test_each_test_starts_empty(self):
        self.assertIsNone(self.get_next_message("websocket.receive"))
        self.send("websocket.receive", {"text": "left behind"})

    def test_each_test_starts_empty_too(self):
        self.assertIsNone(self.get_next_message("websocket.receive"))
        self.send("websocket.receive", {"text": "left behind"})


class ConsumerHelpersTests(ChannelTestCase):
    def test_autodiscovered_consumer_replies(self):
        reply = Channel.new_name("!test")
        self.send_and_consume("testapp.greet", {"reply_channel": reply, "name": "Ann"})
        message = self.get_next_message(reply, require=True)
        self.assertEqual(message["greeting"], "Hello, Ann")
        self.assertEqual(message.channel.name, reply)

    def test_consumer_exception_fails_the_test_after_logging(self):
        with self.assertLogs("channels.worker", "ERROR") as logs:
            with self.assertRaisesMessage(RuntimeError, "testapp.fail always fails"):
                self.send_and_consume("testapp.fail", {})
        self.assertIn("Traceback", logs.output[0])

    def test_http_reply_channels_hold_a_whole_response(self):
        # A test reads a response after the consumer has sent it all.
        reply = Channel.new_name("!http.response")
        for config, capacity in (({}, 100), ({"CAPACITY": 7}, 7),
                                 ({"CHANNEL_CAPACITY": {"!http.response.*": 2}}, 2)):
            with self.subTest(config=config):
                self.assertEqual(memory_backend_for("default", config).capacity_for(reply),
                                 capacity)
        self.assertEqual(InMemoryChannelBackend().capacity_for(reply), 4)  # a server's

    def test_require_fails_without_a_message(self):
        with self.assertRaisesMessage(AssertionError, "'nothing.here'"):
            self.get_next_message("nothing.here", require=True)
        with self.assertRaisesMessage(AssertionError, "No message on channel 'testapp.greet'"):
            self.consume("testapp.greet")
        self.assertIsNone(self.consume("testapp.greet", require=False))

    def test_unrouted_channel_is_an_error(self):
        with self.assertRaisesMessage(AssertionError, "No consumer is routed to channel 'nobody'"):
            self.send_and_consume("nobody", {})

    def test_backend_is_fresh_in_memory_and_restored_after(self):
        backend = self.get_backend()
        self.assertIs(channel_backends["default"], backend)
        with override_settings(CHANNEL_BACKENDS=CHAT):
            # A settings change inside a test gets its own fresh backend.
            inner = self.get_backend()
            self.assertIsNot(inner, backend)
            self.assertIn("websocket.connect", inner.registry.consumers)
        self.assertNotIn("websocket.connect", self.get_backend().registry.consumers)
        self.assertIsInstance(self.get_backend(), InMemoryChannelBackend)

    @override_settings(CHANNEL_BACKENDS={"default": {
        "BACKEND": "tests.support.backends.SharedMemoryBackend", "EXPIRY": 7, "HOSTS": []}})
    def test_any_configured_backend_becomes_a_fresh_in_memory_one(self):
        backend = self.get_backend()
        self.assertIs(type(backend), InMemoryChannelBackend)
        self.assertEqual(backend.expiry, 7)


@override_settings(CHANNEL_BACKENDS={
    "default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": "tests.testapp.routing.broken_connect_routing",
    }
})
class FailingConnectTests(ChannelTestCase):
    def test_worker_closes_socket_when_connect_consumer_raises(self):
        reply = Channel.new_name("!websocket.send")
        with self.assertLogs("channels.worker", "ERROR"):
            with self.assertRaises(ValueError):
                self.send_and_consume("websocket.connect",
                                      {"reply_channel": reply, "path": "/", "order": 0})
        self.assertEqual(self.get_next_message(reply, require=True).content, {"close": True})


class RestoreTests(ChannelTestCase):
    def test_isolation_ends_with_the_test(self):
        from channels.testing import isolated_channel_backends

        outer = channel_backends["default"]
        with isolated_channel_backends():
            self.assertIsNot(channel_backends["default"], outer)
        self.assertIs(channel_backends["default"], outer)
