"""The status page (channels/status/views.py): who may see it, and what
its JSON holds, on the in-memory backend with a worker thread running (as
in runserver, where the page is how to see that backend)."""

from django.contrib.auth import get_user_model
from django.test import TestCase, override_settings

from channels import channel_backends
from channels.testing import isolated_channel_backends
from tests.support.worker_threads import wait_for, worker_threads

TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates",
              "APP_DIRS": True}]
PAGE = "/channels/status/"
DATA = "/channels/status/data.json"


@override_settings(TEMPLATES=TEMPLATES, STATIC_URL="/static/", LOGIN_URL="/login/")
class StatusViewTests(TestCase):
    def setUp(self):
        users = get_user_model().objects
        self.staff = users.create_user("staff", password="pw", is_staff=True)
        self.member = users.create_user("member", password="pw")
        self.enterContext(isolated_channel_backends())

    def test_anonymous_visitors_are_sent_to_log_in(self):
        response = self.client.get(PAGE)
        self.assertRedirects(response, f"/login/?next={PAGE}", fetch_redirect_response=False)

    def test_users_who_are_not_staff_are_refused(self):
        self.client.force_login(self.member)
        self.assertEqual(self.client.get(PAGE).status_code, 403)
        response = self.client.get(DATA)
        self.assertEqual(response.status_code, 403)
        self.assertEqual(response.json(), {"error": "Staff only"})

    def test_an_inactive_staff_member_is_refused(self):
        self.staff.is_active = False
        self.staff.save()
        self.client.force_login(self.staff)
        self.assertEqual(self.client.get(DATA).status_code, 403)

    def test_anonymous_json_is_403_not_a_redirect(self):
        self.assertEqual(self.client.get(DATA).status_code, 403)

    def test_staff_see_the_page_with_its_script_and_data_url(self):
        self.client.force_login(self.staff)
        response = self.client.get(PAGE)
        self.assertEqual(response.status_code, 200)
        self.assertContains(response, 'src="/static/channels/status.js"')
        self.assertContains(response, f'data-url="{DATA}?backend=default"')
        self.assertIn("no-cache", response["Cache-Control"])

    def test_an_unknown_backend_is_404(self):
        self.client.force_login(self.staff)
        self.assertEqual(self.client.get(DATA, {"backend": "nope"}).status_code, 404)
        self.assertEqual(self.client.get(PAGE, {"backend": "nope"}).status_code, 404)

    def test_staff_get_the_report_of_this_process_backend(self):
        self.client.force_login(self.staff)
        backend = channel_backends["default"]
        for n in range(3):
            backend.send("chat.log", {"n": n})
        with worker_threads(backend, ["tests.echo"], 1):
            wait_for(lambda: self.client.get(DATA).json()["workers"], timeout=20)
            report = self.client.get(DATA).json()
        self.assertEqual(report["shards"][0]["up"], True)
        channels = {channel["name"]: channel["total"] for channel in report["channels"]}
        # Every routed channel, and any other holding messages.
        self.assertEqual(channels["chat.log"], 3)
        self.assertEqual(channels["tests.echo"], 0)
        self.assertEqual(channels["http.request"], 0)
        [worker] = report["workers"]
        self.assertEqual(worker["channels"], ["tests.echo"])
        self.assertEqual(report["interface_servers"], [])
        self.assertEqual(report["notes"], [])  # a worker runs here: nothing to explain
