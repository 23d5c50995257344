"""Users and a room to try the chat with, on a fresh database."""

from chat.models import Room
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

DEMO_USERS = ("alice", "bob")
# Staff: sees the channels status page (/channels/status/) and the admin.
DEMO_STAFF = "admin"
# Printed on the login page; this is a demo, never a deployment.
DEMO_PASSWORD = "demo-password"
DEMO_ROOM = "lobby"


class Command(BaseCommand):
    help = (f"Creates the demo users {' and '.join(DEMO_USERS)}, the staff user "
            f"{DEMO_STAFF} (password {DEMO_PASSWORD!r}) and the room {DEMO_ROOM!r}, "
            f"unless they exist.")

    def handle(self, *args, **options):
        User = get_user_model()
        for username in (*DEMO_USERS, DEMO_STAFF):
            if User.objects.filter(username=username).exists():
                self.stdout.write(f"User {username} exists; left as it is.")
            else:
                User.objects.create_user(username, password=DEMO_PASSWORD,
                                         is_staff=username == DEMO_STAFF)
                self.stdout.write(f"Created user {username} (password {DEMO_PASSWORD!r}).")
        _, created = Room.objects.get_or_create(name=DEMO_ROOM)
        if created:
            self.stdout.write(f"Created room {DEMO_ROOM}.")
