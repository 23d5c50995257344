"""The chat in real browsers: headless Chromium driven by Selenium against
ChannelLiveServerTestCase (tests/support/browsers.py says what it needs)."""

import time

from chat.models import Room

from channels.testing import ChannelLiveServerTestCase
from demo.tests.helpers import fast_passwords, make_user
from tests.support.browsers import ChatUser, skip_without_browser, start_browser

# How soon a message typed in one window must show in another.
DELIVERY_TIME = 1.0


@fast_passwords
@skip_without_browser
class BrowserChatTests(ChannelLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.alice_browser = start_browser(cls)
        cls.bob_browser = start_browser(cls)

    def setUp(self):
        make_user("alice", "alice-pw")
        make_user("bob", "bob-pw")
        Room.objects.create(name="lobby")
        self.alice = ChatUser(self.alice_browser, self.live_server_url)
        self.bob = ChatUser(self.bob_browser, self.live_server_url)
        for browser in (self.alice_browser, self.bob_browser):
            # Leave the page, closing its socket, before the test ends.
            self.addCleanup(browser.get, "about:blank")

    def test_two_users_chat_and_history_shows_on_reload(self):
        alice, bob = self.alice, self.bob
        alice.log_in("alice", "alice-pw")
        bob.log_in("bob", "bob-pw")
        alice.enter_room("lobby")
        bob.enter_room("lobby")

        alice.say("Hello Bob")
        typed = time.monotonic()
        bob.wait_for_message("alice: Hello Bob", DELIVERY_TIME)
        self.assertLess(time.monotonic() - typed, DELIVERY_TIME)

        bob.say("Hi Alice")
        alice.wait_for_message("bob: Hi Alice", DELIVERY_TIME)
        self.assertEqual(alice.messages(), ["alice: Hello Bob", "bob: Hi Alice"])

        bob.browser.refresh()
        bob.wait().until(lambda _: len(bob.messages()) == 2)
        self.assertEqual(bob.messages(), ["alice: Hello Bob", "bob: Hi Alice"])

    def test_two_users_see_who_is_online(self):
        # A room of its own: the disconnects of the other tests' sockets
        # may run after their sessions were flushed with the database.
        Room.objects.create(name="kitchen")
        alice, bob = self.alice, self.bob
        alice.log_in("alice", "alice-pw")
        bob.log_in("bob", "bob-pw")
        alice.enter_room("kitchen")
        alice.wait_for_online(["alice"])
        first_tab = bob.browser.current_window_handle
        self.addCleanup(bob.browser.switch_to.window, first_tab)
        tabs = []
        for _ in range(2):  # one user in two tabs is one entry
            bob.browser.switch_to.new_window("tab")
            tabs.append(bob.browser.current_window_handle)
            bob.enter_room("kitchen")
        bob.wait_for_online(["alice", "bob (2 tabs)"])
        alice.wait_for_online(["alice", "bob (2 tabs)"])
        self.assertEqual(alice.messages(), [])  # presence is not chat
        for tab, online in zip(tabs, (["alice", "bob"], ["alice"]), strict=True):
            bob.browser.switch_to.window(tab)
            bob.browser.close()  # the tab, and its socket
            alice.wait_for_online(online)

    def test_anonymous_socket_is_refused(self):
        browser = self.alice_browser
        browser.delete_all_cookies()
        browser.get(f"{self.live_server_url}/login/")  # same origin, not logged in
        outcome = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const socket = new WebSocket(arguments[0]);
            socket.onopen = () => done("open");
            socket.onclose = (event) => done("closed " + event.code);
        """, f"{self.ws_url}/ws/chat/lobby/")
        self.assertEqual(outcome, "closed 1006")  # the handshake was refused
        # The room page sends anonymous visitors to the login page.
        browser.get(f"{self.live_server_url}/rooms/lobby/")
        self.assertIn("/login/?next=/rooms/lobby/", browser.current_url)
