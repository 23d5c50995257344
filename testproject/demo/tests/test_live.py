"""The chat on a live server (ChannelLiveServerTestCase), driven over real
sockets: HTTP with requests, WebSocket with websocket-client."""

import json
import re

import requests
import websocket
from chat.models import Room

from channels.testing import ChannelLiveServerTestCase
from demo.tests.helpers import fast_passwords, make_user


@fast_passwords
class LiveChatTests(ChannelLiveServerTestCase):
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

    def test_pages_and_static_files(self):
        session = self.log_in("alice", "alice-pw")
        room = session.get(f"{self.live_server_url}/rooms/lobby/", timeout=5)
        self.assert_page_has(room, 'data-socket-path="/ws/chat/lobby/"')
        script = session.get(f"{self.live_server_url}/static/chat/chat.js", timeout=5)
        self.assert_page_has(script, "new WebSocket")

    def test_two_users_chat_and_history_shows_on_joining(self):
        alice = self.socket("/ws/chat/lobby/", self.log_in("alice", "alice-pw"))
        bob_session = self.log_in("bob", "bob-pw")
        bob = self.socket("/ws/chat/lobby/", bob_session)
        self.addCleanup(alice.close)
        self.addCleanup(bob.close)
        alice.send("hi bob")
        for client in (alice, bob):
            self.assertEqual(json.loads(client.recv())["text"], "hi bob")
        bob.send("hi alice")
        self.assertEqual(json.loads(alice.recv())["user"], "bob")
        late = self.socket("/ws/chat/lobby/", bob_session)
        self.addCleanup(late.close)
        history = [json.loads(late.recv()) for _ in range(2)]
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
