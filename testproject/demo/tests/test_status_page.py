"""The channels status page in the demo (/channels/status/, linked from the
admin), and in a real browser: headless Chromium logs in as staff, opens
it, and sees its charts grow and show the traffic that flows meanwhile."""

import json
import threading

import requests
from django.test import TestCase
from selenium.webdriver.common.by import By

from channels.testing import ChannelLiveServerTestCase
from demo.tests.helpers import fast_passwords, make_user
from tests.support.browsers import ChatUser, skip_without_browser, start_browser

STATUS = "/channels/status/"


def make_staff(username, password):
    user = make_user(username, password)
    user.is_staff = True
    user.save()
    return user


@fast_passwords
class StatusPageTests(TestCase):
    def test_the_demo_serves_it_to_staff_only(self):
        response = self.client.get(STATUS)
        self.assertRedirects(response, f"/login/?next={STATUS}", fetch_redirect_response=False)
        self.client.force_login(make_user("alice"))
        self.assertEqual(self.client.get(STATUS).status_code, 403)
        self.client.force_login(make_staff("root", "pw"))
        self.assertContains(self.client.get(STATUS), "Channels status")

    def test_the_admin_links_to_it(self):
        self.client.force_login(make_staff("root", "pw"))
        response = self.client.get("/admin/")
        self.assertContains(response, f'<a href="{STATUS}">Channels status</a>', html=True)
        self.assertContains(response, "Log out")  # the admin's own links stay


class Traffic:
    """Requests to the site from a thread, until stopped."""

    def __init__(self, url):
        self.url = url
        self.sent = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        with requests.Session() as session:
            while not self.stopped.is_set():
                session.get(self.url, timeout=30)
                self.sent += 1

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stopped.set()
        self.thread.join(60)


@fast_passwords
@skip_without_browser
class StatusPageBrowserTests(ChannelLiveServerTestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.browser = start_browser(cls)

    def setUp(self):
        make_staff("root", "root-pw")
        self.user = ChatUser(self.browser, self.live_server_url)
        self.addCleanup(self.browser.get, "about:blank")  # stop its polling

    def chart(self, name):
        svg = self.browser.find_element(By.ID, f"chart-{name}")
        last = svg.get_attribute("data-last")
        return int(svg.get_attribute("data-points")), json.loads(last) if last else None

    def test_staff_see_the_charts_follow_the_traffic(self):
        self.user.log_in("root", "root-pw")
        self.browser.get(f"{self.live_server_url}{STATUS}")
        wait = self.user.wait(60)
        wait.until(lambda _: self.chart("rate")[0] >= 1)  # two reports: one rate
        self.assertEqual(self.browser.find_element(By.ID, "state").get_attribute("data-state"),
                         "live")
        points_before = self.chart("rate")[0]

        with Traffic(f"{self.live_server_url}/hello/") as traffic:
            # A poll after the first requests: the chart has grown and shows them.
            wait.until(lambda _: traffic.sent >= 20 and self.chart("rate")[0] > points_before + 1
                       and self.chart("rate")[1][0] > 0)
        points, (handled_per_second, errors_per_second) = self.chart("rate")
        self.assertGreater(points, points_before)
        self.assertGreater(handled_per_second, 0)
        self.assertEqual(errors_per_second, 0)
        # Consumer time: the mean of the same poll, and the slowest.
        wait.until(lambda _: (self.chart("latency")[1] or [None])[0] is not None)
        self.assertGreater(self.chart("latency")[1][1], 0)
        self.assertGreater(self.chart("depth")[0], points_before)
        path = self.browser.find_element(By.CSS_SELECTOR,
                                         '#chart-rate path[data-series="handled/s"]')
        self.assertGreater(int(path.get_attribute("data-points")), points_before)

        # The tables: this site's worker threads and interface server.
        workers = self.browser.find_elements(By.CSS_SELECTOR, "#workers tr")
        self.assertEqual(len(workers), 2)  # a heading, one process
        self.assertIn("http.request", workers[1].text)
        servers = self.browser.find_elements(By.CSS_SELECTOR, "#interface-servers tr")
        self.assertEqual(len(servers), 2)
        self.assertIn("up", self.browser.find_element(By.ID, "shards").text)
