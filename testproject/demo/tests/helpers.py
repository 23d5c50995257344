"""What the chat tests share."""

import json

from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import override_settings

from channels import Channel

# Logging users in with PBKDF2 would cost each test a second.
fast_passwords = override_settings(
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"])


def make_user(username, password="pw-for-tests"):
    return get_user_model().objects.create_user(username, password=password)


class Socket:
    """One WebSocket connection as an interface server would present it to
    the consumers: its messages, numbered, with the browser's cookies."""

    def __init__(self, case, path, cookies=None):
        self.case = case
        self.path = path
        self.cookies = cookies or {}
        self.reply_channel = Channel.new_name("!websocket.send")
        self.order = 0

    @classmethod
    def logged_in(cls, case, user, path):
        """A socket from a browser in which ``user`` logged in."""
        case.client.force_login(user)
        cookie = case.client.cookies[settings.SESSION_COOKIE_NAME].value
        return cls(case, path, {settings.SESSION_COOKIE_NAME: cookie})

    def _content(self, **fields):
        return {"reply_channel": self.reply_channel, "path": self.path, **fields}

    def connect(self):
        self.case.send_and_consume("websocket.connect", self._content(
            order=0, cookies=self.cookies, headers=[], query_string="", query={},
            client=["127.0.0.1", 50000], server=["127.0.0.1", 8000], scheme="ws"))

    def send_text(self, text):
        self.order += 1
        self.case.send_and_consume("websocket.receive", self._content(order=self.order,
                                                                      text=text))

    def say(self, text):
        """Type ``text`` in the page: a frame on the chat's stream."""
        self.send_text(json.dumps({"stream": "chat", "payload": {"text": text}}))

    def disconnect(self, code=1000):
        self.order += 1
        self.case.send_and_consume("websocket.disconnect", self._content(order=self.order,
                                                                         code=code))

    def keepalive(self):
        self.case.send_and_consume("websocket.keepalive", self._content())

    def received(self):
        """Everything sent to this socket so far, taking it off the channel."""
        messages = []
        while (message := self.case.get_next_message(self.reply_channel)) is not None:
            messages.append(message.content)
        return messages


def stream_payloads(frames, stream):
    """The payloads on ``stream`` in ``frames`` (reply channel messages),
    decoded."""
    found = []
    for frame in frames:
        if "text" in frame:
            envelope = json.loads(frame["text"])
            assert envelope["stream"] in ("chat", "presence"), envelope
            if envelope["stream"] == stream:
                found.append(envelope["payload"])
    return found


def chat_payloads(frames):
    """The chat messages in ``frames``."""
    return stream_payloads(frames, "chat")
