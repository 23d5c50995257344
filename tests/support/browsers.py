"""Headless Chromium, driven by Selenium, for the tests that use the chat
as people do (testproject's demo tests and the guide's, tests/test_guide.py).

Needs Debian's ``chromium`` and ``chromium-driver``; without them the tests
that use this are skipped (``skip_without_browser``), unless
CHANNELS_REQUIRE_BROWSER=1 (as in CI) makes that a failure.
"""

from __future__ import annotations

import os
import shutil
import unittest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
INSTALL_HINT = ("Browser tests need Chromium and its WebDriver: on Debian or Ubuntu, "
                "apt-get install chromium chromium-driver")

try:
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.wait import WebDriverWait
except ImportError:  # pragma: no cover - selenium is in the tests extra
    webdriver = None


def find_browser() -> tuple[str, str] | None:
    """Paths of the browser and its driver, or None when either is missing."""
    browser = next(filter(None, map(shutil.which, BROWSERS)), None)
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def browser_required() -> bool:
    return os.environ.get("CHANNELS_REQUIRE_BROWSER") == "1"


skip_without_browser = unittest.skipIf(
    (webdriver is None or find_browser() is None) and not browser_required(),
    INSTALL_HINT + " (and pip install selenium)")


def start_browser(case: type[unittest.TestCase]):
    """A headless Chromium for the test class ``case``, quit after it."""
    found = find_browser()
    if webdriver is None or found is None:
        raise AssertionError(f"CHANNELS_REQUIRE_BROWSER=1 but no browser: {INSTALL_HINT}")
    browser, driver = found
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=1000,800"):
        options.add_argument(argument)
    instance = webdriver.Chrome(options=options,
                                service=webdriver.ChromeService(executable_path=driver))
    case.addClassCleanup(instance.quit)
    return instance


class ChatUser:
    """One person in one browser, using the chat's pages (docs/guide/chat)
    at ``base_url``."""

    def __init__(self, browser, base_url: str):
        self.browser = browser
        self.base_url = base_url

    def wait(self, timeout: float = 10):
        return WebDriverWait(self.browser, timeout, poll_frequency=0.02)

    def log_in(self, username: str, password: str) -> None:
        browser = self.browser
        browser.delete_all_cookies()
        browser.get(f"{self.base_url}/login/")
        browser.find_element(By.NAME, "username").send_keys(username)
        browser.find_element(By.NAME, "password").send_keys(password + Keys.ENTER)
        self.wait().until(EC.text_to_be_present_in_element((By.ID, "whoami"), username))

    def create_room(self, name: str) -> None:
        """Create a room with the form on the list of rooms; it opens."""
        self.browser.get(f"{self.base_url}/")
        self.browser.find_element(By.NAME, "name").send_keys(name + Keys.ENTER)
        self.wait_connected()

    def enter_room(self, name: str) -> None:
        self.browser.get(f"{self.base_url}/rooms/{name}/")
        self.wait_connected()

    def wait_connected(self) -> None:
        """The page's script ran and its socket is open."""
        self.wait().until(EC.text_to_be_present_in_element((By.ID, "status"), "Connected"))

    def say(self, text: str) -> None:
        self.browser.find_element(By.ID, "text").send_keys(text + Keys.ENTER)

    def wait_for_message(self, text: str, timeout: float = 10) -> None:
        self.wait(timeout).until(EC.text_to_be_present_in_element((By.ID, "messages"), text))

    def messages(self) -> list[str]:
        return [item.text for item in
                self.browser.find_elements(By.CSS_SELECTOR, "#messages li")]

    def online(self) -> list[str]:
        """The room page's list of who is online, as shown (read in one go:
        the page replaces its items as it changes)."""
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#online li'), li => li.textContent)")

    def wait_for_online(self, names: list[str], timeout: float = 20) -> None:
        try:
            self.wait(timeout).until(lambda _: self.online() == names)
        except Exception:
            raise AssertionError(f"online: {self.online()}, not {names}") from None
