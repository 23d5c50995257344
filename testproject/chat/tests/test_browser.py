"""The chat in real browsers: headless Chromium driven by Selenium against
ChannelLiveServerTestCase.

Needs Debian's ``chromium`` and ``chromium-driver``; without them the tests
are skipped, unless CHANNELS_REQUIRE_BROWSER=1 (as in CI) makes that a
failure.
"""

import os
import shutil
import time
import unittest

from channels.testing import ChannelLiveServerTestCase
from chat.models import Room
from chat.tests.helpers import fast_passwords, make_user

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = ("Browser tests need Chromium and its WebDriver: on Debian or Ubuntu, "
                "apt-get install chromium chromium-driver")
# How soon a message typed in one window must show in another.
DELIVERY_TIME = 1.0


def find_browser():
    """Paths of the browser and its driver, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def browser_required():
    return os.environ.get("CHANNELS_REQUIRE_BROWSER") == "1"


try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover - selenium is in the tests extra
    webdriver = None


@fast_passwords
@unittest.skipIf((webdriver is None or find_browser() is None) and not browser_required(),
                 INSTALL_HINT + " (and pip install selenium)")
class BrowserChatTests(ChannelLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        found = find_browser()
        if webdriver is None or found is None:
            raise AssertionError(f"CHANNELS_REQUIRE_BROWSER=1 but no browser: {INSTALL_HINT}")
        super().setUpClass()
        cls.alice_browser = cls.start_browser(*found)
        cls.bob_browser = cls.start_browser(*found)

    @classmethod
    def start_browser(cls, browser, driver):
        options = webdriver.ChromeOptions()
        options.binary_location = browser
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1000,800"):
            options.add_argument(argument)
        instance = webdriver.Chrome(options=options,
                                    service=webdriver.ChromeService(executable_path=driver))
        cls.addClassCleanup(instance.quit)
        return instance

    def setUp(self):
        make_user("alice", "alice-pw")
        make_user("bob", "bob-pw")
        Room.objects.create(name="lobby")
        for browser in (self.alice_browser, self.bob_browser):
            browser.delete_all_cookies()
            # Leave the page, closing its socket, before the test ends.
            self.addCleanup(browser.get, "about:blank")

    def wait(self, browser, timeout=5):
        return WebDriverWait(browser, timeout, poll_frequency=0.02)

    def log_in(self, browser, username, password):
        browser.get(f"{self.live_server_url}/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
        self.wait(browser).until(EC.text_to_be_present_in_element((By.ID, "whoami"),
                                                                  username))

    def enter_room(self, browser):
        browser.get(f"{self.live_server_url}/rooms/lobby/")
        self.wait(browser).until(EC.text_to_be_present_in_element((By.ID, "status"),
                                                                  "Connected"))

    def messages(self, browser):
        return [item.text for item in browser.find_elements(By.CSS_SELECTOR, "#messages li")]

    def test_two_users_chat_and_history_shows_on_reload(self):
        alice, bob = self.alice_browser, self.bob_browser
        self.log_in(alice, "alice", "alice-pw")
        self.log_in(bob, "bob", "bob-pw")
        self.enter_room(alice)
        self.enter_room(bob)

        alice.find_element(By.ID, "text").send_keys("Hello Bob" + Keys.ENTER)
        typed = time.monotonic()
        self.wait(bob, DELIVERY_TIME).until(
            EC.text_to_be_present_in_element((By.ID, "messages"), "alice: Hello Bob"))
        self.assertLess(time.monotonic() - typed, DELIVERY_TIME)

        bob.find_element(By.ID, "text").send_keys("Hi Alice" + Keys.ENTER)
        self.wait(alice, DELIVERY_TIME).until(
            EC.text_to_be_present_in_element((By.ID, "messages"), "bob: Hi Alice"))
        self.assertEqual(self.messages(alice), ["alice: Hello Bob", "bob: Hi Alice"])

        bob.refresh()
        self.wait(bob).until(lambda b: len(self.messages(b)) == 2)
        self.assertEqual(self.messages(bob), ["alice: Hello Bob", "bob: Hi Alice"])

    def test_anonymous_socket_is_refused(self):
        browser = self.alice_browser
        browser.get(f"{self.live_server_url}/login/")  # same origin, not logged in
        outcome = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const socket = new WebSocket(arguments[0]);
            socket.onopen = () => done("open");
            socket.onclose = (event) => done("closed " + event.code);
        """, f"{self.ws_url}/ws/chat/lobby/")
        self.assertEqual(outcome, "closed 1006")  # the handshake was refused
        self.assertIn("?next=/rooms/lobby/", self.page_for_anonymous(browser))

    def page_for_anonymous(self, browser):
        """The room page sends anonymous visitors to the login page."""
        browser.get(f"{self.live_server_url}/rooms/lobby/")
        return browser.current_url
