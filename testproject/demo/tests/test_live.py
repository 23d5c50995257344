"""The chat on a live server (ChannelLiveServerTestCase), driven over real
sockets: HTTP with requests, WebSocket with websocket-client."""

import re
import time

import requests
import websocket
from chat.models import Room
from django.contrib.sessions.models import Session
from django.test import override_settings
from testproject.consumers import websocket as project_consumer
from testproject.routing import channel_routing

from channels import Channel
from channels.testing import ChannelLiveServerTestCase
from demo.tests.helpers import fast_passwords, make_user
from tests.support.chat_socket import next_chat_message, say


@fast_passwords
class LiveChatCase(ChannelLiveServerTestCase):
    def setUp(self):
        make_user("alice", "alice-pw")
        make_user("bob", "bob-pw")
        Room.objects.create(name="lobby")

    def log_in(self, username, password):
        """A requests session logged in through the login page."""
        session = requests.Session()
        page = session.get(f"{self.live_server_url}/login/", timeout=5)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        response = session.post(f"{self.live_server_url}/login/", timeout=5, data={
            "username": username, "password": password, "csrfmiddlewaretoken": token})
        self.assertEqual(response.url, f"{self.live_server_url}/")
        return session

    def socket(self, path, session=None):
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items()) if session else None
        return websocket.create_connection(f"{self.ws_url}{path}", timeout=5,
                                           origin=self.live_server_url, cookie=cookie)

    def assert_page_has(self, response, text):
        self.assertEqual(response.status_code, 200)
        self.assertIn(text, response.text)

    def wait_for(self, condition, timeout=10):
        deadline = time.monotonic() + timeout
        while not condition():
            self.assertLess(time.monotonic(), deadline, "condition not met in time")
            time.sleep(0.02)

    def session_count(self):
        with self.server.quiet():  # no consumer uses the database meanwhile
            return Session.objects.count()


class LiveChatTests(LiveChatCase):
    def test_pages_and_static_files(self):
        session = self.log_in("alice", "alice-pw")
        room = session.get(f"{self.live_server_url}/rooms/lobby/", timeout=5)
        self.assert_page_has(room, 'data-socket-path="/ws/chat/lobby/"')
        self.assert_page_has(room, '{"imports": {"channels": "/static/channels/client.js"}}')
        script = session.get(f"{self.live_server_url}/static/chat/chat.js", timeout=5)
        self.assert_page_has(script, 'import { connect } from "channels";')
        client = session.get(f"{self.live_server_url}/static/channels/client.js", timeout=5)
        self.assert_page_has(client, "export class Client")
        # A module script runs only when served as JavaScript.
        self.assertIn("javascript", client.headers["Content-Type"])

    def test_two_users_chat_and_history_shows_on_joining(self):
        alice = self.socket("/ws/chat/lobby/", self.log_in("alice", "alice-pw"))
        bob_session = self.log_in("bob", "bob-pw")
        bob = self.socket("/ws/chat/lobby/", bob_session)
        self.addCleanup(alice.close)
        self.addCleanup(bob.close)
        say(alice, "hi bob")
        for client in (alice, bob):
            self.assertEqual(next_chat_message(client)["text"], "hi bob")
        say(bob, "hi alice")
        self.assertEqual(next_chat_message(alice)["user"], "bob")
        late = self.socket("/ws/chat/lobby/", bob_session)
        self.addCleanup(late.close)
        history = [next_chat_message(late) for _ in range(2)]
        self.assertEqual([(m["user"], m["text"]) for m in history],
                         [("alice", "hi bob"), ("bob", "hi alice")])

    def test_anonymous_socket_is_refused(self):
        with self.assertRaises(websocket.WebSocketBadStatusException) as refused:
            self.socket("/ws/chat/lobby/")
        self.assertEqual(refused.exception.status_code, 403)

    def test_echo(self):
        echo = self.socket("/ws/echo/")
        self.addCleanup(echo.close)
        echo.send("text")
        self.assertEqual(echo.recv(), "text")
        echo.send_binary(b"\x00\xff")
        self.assertEqual(echo.recv(), b"\x00\xff")


class KeepaliveGate:
    """While closed, keepalives are held back (the last of each socket), to
    be sent again once it opens: the worst case of a keepalive that waits
    behind other messages until its socket's disconnect has run."""

    open = False
    held: dict[str, dict] = {}
    ran: list[str] = []

    @classmethod
    def consumer(cls, message):
        if cls.open:
            project_consumer(message)
            cls.ran.append(message["reply_channel"])
        else:
            cls.held[message["reply_channel"]] = message.content


GATED_ROUTING = {**channel_routing, "websocket.keepalive": KeepaliveGate.consumer}


# EXPIRY 2, keepalives on: each socket sends one every second.
@override_settings(CHANNEL_BACKENDS={"default": {
    "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
    "ROUTING": "demo.tests.test_live.GATED_ROUTING", "EXPIRY": 2}},
    CHANNELS_SERVER={"WEBSOCKET_KEEPALIVE": True})
class LateKeepaliveTests(LiveChatCase):
    def test_keepalives_run_after_their_disconnect_leave_no_session(self):
        KeepaliveGate.open, KeepaliveGate.held, KeepaliveGate.ran = False, {}, []
        browser = self.log_in("alice", "alice-pw")
        sessions = self.session_count()  # the browser's
        sockets = [self.socket("/ws/chat/lobby/", browser) for _ in range(5)]
        self.wait_for(lambda: len(KeepaliveGate.held) == 5)
        self.assertEqual(self.session_count(), sessions + 5)
        for client in sockets:
            client.close()
        self.wait_for(lambda: self.session_count() == sessions)  # the disconnects ran
        KeepaliveGate.open = True
        for content in KeepaliveGate.held.values():
            Channel("websocket.keepalive").send(content)
        self.wait_for(lambda: len(KeepaliveGate.ran) == 5)
        self.assertEqual(self.session_count(), sessions)
