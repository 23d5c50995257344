from django.conf import settings
from django.db import models
from django.urls import reverse

# How many earlier messages a socket gets when it joins a room.
HISTORY_LENGTH = 50

# The longest message kept; longer ones are cut.
MAX_TEXT_LENGTH = 2000


class Room(models.Model):
    name = models.SlugField(unique=True, max_length=50)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("room", args=[self.name])

    def history(self):
        """The last HISTORY_LENGTH messages, oldest first."""
        latest = self.messages.select_related("user").order_by("-sent", "-id")
        return reversed(latest[:HISTORY_LENGTH])


class Message(models.Model):
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="messages")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    text = models.TextField(max_length=MAX_TEXT_LENGTH)
    sent = models.DateTimeField(auto_now_add=True, db_index=True)

    def as_json(self):
        """What a browser receives for each message, as one WebSocket frame
        (the id lets it drop a message it already has)."""
        return {"id": self.pk, "user": self.user.username, "text": self.text,
                "sent": self.sent.isoformat()}
