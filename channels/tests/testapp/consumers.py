"""Consumers of the test app: found by autodiscovery (``@consumer``) or
routed by ``routing.py`` in tests that override CHANNEL_BACKENDS."""

from channels import Group
from channels.auth import channel_session_user, transfer_user
from channels.decorators import channel_session, consumer, enforce_ordering


@consumer("testapp.greet")
def greet(message):
    message.reply_channel.send({"greeting": f"Hello, {message['name']}"})


@consumer("testapp.fail")
def fail(message):
    raise RuntimeError("testapp.fail always fails")


@transfer_user
def ws_connect(message):
    if not message.user.is_authenticated:
        message.reply_channel.send({"accept": False})
        return
    message.channel_session["room"] = message["path"].strip("/").split("/")[-1]
    Group(f"room-{message.channel_session['room']}").add(message.reply_channel)


@enforce_ordering
@channel_session_user
def ws_receive(message):
    room = message.channel_session["room"]
    Group(f"room-{room}").send({"text": f"{message.user.username}: {message['text']}"})


@channel_session
def ws_disconnect(message):
    Group(f"room-{message.channel_session['room']}").discard(message.reply_channel)


def ws_connect_broken(message):
    raise ValueError("cannot take this connection")
