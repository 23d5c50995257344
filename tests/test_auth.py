"""http_session_user, channel_session_user and transfer_user."""

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.test import TestCase

from channels import Channel
from channels.auth import channel_session_user, http_session_user, transfer_user
from channels.backends.memory import InMemoryChannelBackend
from channels.message import Message


class AuthDecoratorTests(TestCase):
    def setUp(self):
        self.backend = InMemoryChannelBackend()
        self.alice = User.objects.create_user("alice", password="pw")
        self.client.login(username="alice", password="pw")
        self.cookies = {"sessionid": self.client.cookies["sessionid"].value}
        self.reply = Channel.new_name("!websocket.send")

    def consume(self, decorator, channel="websocket.receive", **content):
        seen = {}

        @decorator
        def consumer(message):
            seen["user"] = message.user
            seen["channel_session"] = {
                key: value for key, value in getattr(message, "channel_session", {}).items()
                if key != "_session_expiry"}

        consumer(Message({"reply_channel": self.reply, **content}, channel, self.backend))
        return seen

    def test_http_session_user(self):
        self.assertEqual(self.consume(http_session_user, cookies=self.cookies)["user"], self.alice)
        self.assertFalse(self.consume(http_session_user)["user"].is_authenticated)
        unknown = self.consume(http_session_user, cookies={"sessionid": "x" * 32})
        self.assertFalse(unknown["user"].is_authenticated)

    def test_password_change_logs_the_session_out(self):
        self.alice.set_password("new")
        self.alice.save()
        seen = self.consume(http_session_user, cookies=self.cookies)
        self.assertFalse(seen["user"].is_authenticated)

    def test_channel_session_user_is_anonymous_until_transferred(self):
        self.assertFalse(self.consume(channel_session_user)["user"].is_authenticated)

    def test_transfer_user_logs_the_connection_in(self):
        seen = self.consume(transfer_user, "websocket.connect", cookies=self.cookies)
        self.assertEqual(seen["user"], self.alice)
        self.assertEqual(set(seen["channel_session"]),
                         {SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY})
        # Later messages carry no cookie, only the reply channel.
        self.assertEqual(self.consume(channel_session_user)["user"], self.alice)
        # Another connection is not logged in.
        self.reply = Channel.new_name("!websocket.send")
        self.assertFalse(self.consume(channel_session_user)["user"].is_authenticated)

    def test_transfer_of_anonymous_visitor_leaves_no_auth_keys(self):
        self.consume(transfer_user, "websocket.connect", cookies=self.cookies)
        self.client.logout()
        seen = self.consume(transfer_user, "websocket.connect", cookies=self.cookies)
        self.assertFalse(seen["user"].is_authenticated)
        self.assertEqual(seen["channel_session"], {})
        self.assertFalse(self.consume(channel_session_user)["user"].is_authenticated)
