"""Channel sessions through a real server and WebSocket: a login copied
into one (transfer_user) lasts CHANNELS_SESSION_AGE past the connection's
last message, not the session cookie's age, is renewed while the socket is
open, and is deleted when it closes."""

from datetime import timedelta

import websocket
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.test import override_settings
from django.utils import timezone

from channels.testing import ChannelLiveServerTestCase
from tests.support.worker_threads import wait_for

AGE = 4


@override_settings(
    CHANNEL_BACKENDS={"default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        # Keepalives every second (half EXPIRY).
        "ROUTING": "tests.session_consumers.routing", "EXPIRY": 2}},
    CHANNELS_SESSION_AGE=AGE, CHANNELS_SERVER={"WEBSOCKET_KEEPALIVE": True})
class ChannelSessionLifeTests(ChannelLiveServerTestCase):
    workers = 2
    serve_static = False

    def connect(self):
        user = User.objects.create_user("alice", password="x")
        self.client.force_login(user)
        self.http_key = self.client.cookies[settings.SESSION_COOKIE_NAME].value
        return websocket.create_connection(
            f"{self.ws_url}/chat/", timeout=5,
            cookie=f"{settings.SESSION_COOKIE_NAME}={self.http_key}")

    def channel_sessions(self):
        return list(Session.objects.exclude(session_key=self.http_key))

    def test_login_lives_as_long_as_the_socket_and_no_longer(self):
        ws = self.connect()
        ws.send("who")
        self.assertEqual(ws.recv(), "alice")
        [row] = self.channel_sessions()
        first_expiry = row.expire_date
        # AGE seconds from the last message, not SESSION_COOKIE_AGE (2 weeks).
        self.assertLessEqual((first_expiry - timezone.now()).total_seconds(), AGE)
        # Keepalives renew it while the socket is idle, past its first age.
        wait_for(lambda: timezone.now() > first_expiry + timedelta(seconds=1), timeout=15)
        [row] = self.channel_sessions()
        self.assertGreater(row.expire_date, timezone.now())
        ws.send("who")
        self.assertEqual(ws.recv(), "alice")
        ws.close()
        # Closed: the row, and the login with it, is gone.
        wait_for(lambda: not self.channel_sessions(), timeout=10)
        self.assertTrue(Session.objects.filter(session_key=self.http_key).exists())
