"""The chat consumers shown in docs/decorators.rst (included from here, so
the documented code is the tested code); routed by routing.py."""

# docs: start
from channels import Group
from channels.auth import channel_session_user, transfer_user
from channels.decorators import channel_session, enforce_ordering


@transfer_user
def ws_connect(message):
    if not message.user.is_authenticated:
        message.reply_channel.send({"accept": False})
        return
    message.channel_session["room"] = message["path"].strip("/").split("/")[-1]
    Group("room-" + message.channel_session["room"]).add(message.reply_channel)


@enforce_ordering
@channel_session_user
def ws_receive(message):
    room = message.channel_session["room"]
    Group("room-" + room).send({"text": f"{message.user.username}: {message['text']}"})


@enforce_ordering
@channel_session
def ws_disconnect(message):
    Group("room-" + message.channel_session["room"]).discard(message.reply_channel)
