import io

from chat.models import Room
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import TestCase
from django.urls import reverse

from demo.tests.helpers import fast_passwords, make_user


@fast_passwords
class ViewTests(TestCase):
    def test_pages_need_a_login(self):
        for url in (reverse("rooms"), "/rooms/lobby/"):
            response = self.client.get(url)
            self.assertRedirects(response, f"{reverse('login')}?next={url}",
                                 fetch_redirect_response=False)

    def test_log_in(self):
        make_user("alice", "secret-word")
        response = self.client.post(reverse("login"),
                                    {"username": "alice", "password": "secret-word"})
        self.assertRedirects(response, reverse("rooms"))

    def test_create_a_room_and_open_it(self):
        self.client.force_login(make_user("alice"))
        response = self.client.post(reverse("rooms"), {"name": "kitchen"}, follow=True)
        self.assertRedirects(response, "/rooms/kitchen/")
        self.assertContains(response, 'data-socket-path="/ws/chat/kitchen/"')
        self.assertContains(self.client.get(reverse("rooms")), 'href="/rooms/kitchen/"')

    def test_bad_room_name_is_refused(self):
        self.client.force_login(make_user("alice"))
        response = self.client.post(reverse("rooms"), {"name": "no spaces"})
        self.assertEqual(response.status_code, 200)
        self.assertFalse(Room.objects.exists())

    def test_missing_room_is_404(self):
        self.client.force_login(make_user("alice"))
        self.assertEqual(self.client.get("/rooms/nowhere/").status_code, 404)


@fast_passwords
class DemoUsersTests(TestCase):
    def test_creates_users_and_room_once(self):
        call_command("demo_users", stdout=io.StringIO())
        alice = get_user_model().objects.get(username="alice")
        alice.set_password("changed")
        alice.save()
        call_command("demo_users", stdout=io.StringIO())
        users = get_user_model().objects.order_by("username")
        self.assertEqual([u.username for u in users], ["admin", "alice", "bob"])
        self.assertEqual([u.is_staff for u in users], [True, False, False])
        self.assertTrue(users[1].check_password("changed"))
        self.assertTrue(users[2].check_password("demo-password"))
        self.assertEqual([r.name for r in Room.objects.all()], ["lobby"])
