"""The chat's consumers. A socket at /ws/chat/<room>/ joins the room's
Group, through the room's Presence, which tells everyone in the room who
is online; what a user types goes to the chat.messages channel, whose
consumer saves it and then sends it to everyone in the room, so every
message that anybody sees is in the history. The socket carries streams
(the page's channels client): the chat is the stream "chat", who is online
the stream "presence"."""

import logging
import re

from django.contrib.auth import get_user_model

from channels import Channel, Group
from channels.auth import channel_session_user, transfer_user
from channels.decorators import channel_session, enforce_ordering, linearize
from channels.presence import Presence
from channels.streams import Demultiplexer, Stream
from chat.models import MAX_TEXT_LENGTH, Message, Room

logger = logging.getLogger(__name__)

ROOM_PATH = re.compile(r"/ws/chat/(?P<name>[-\w]+)/")

# A channel of our own, routed to save_message in mysite/routing.py.
MESSAGES_CHANNEL = "chat.messages"

# Each frame is {"stream": "chat", "payload": ...}, both ways.
CHAT = Stream("chat")


def room_group(name):
    """The Group of the sockets in a room."""
    return Group(f"chat-{name}")


def room_presence(name):
    """Who is in a room: the presence of the room's Group, one entry per
    user however many tabs they have open."""
    return Presence(room_group(name).name)


def join_room(message, room):
    """Add the socket to the room's group and presence (again: renewed)."""
    user = message.user
    room_presence(room).add(message.reply_channel, str(user.pk), {"name": user.username})


@linearize
@transfer_user
def chat_connect(message):
    """Let in only logged-in users, to rooms that exist; add the socket to
    the room, then send it the room's history."""
    match = ROOM_PATH.fullmatch(message["path"])
    room = Room.objects.filter(name=match["name"]).first() if match else None
    if room is None or not message.user.is_authenticated:
        message.reply_channel.send({"accept": False})
        message.channel_session.flush()  # no more messages will come
        return
    message.channel_session["room"] = room.name
    message.reply_channel.send({"accept": True})
    # Join first, then send the history: a message saved in between arrives
    # twice rather than never, and the page drops the copy by its id.
    join_room(message, room.name)
    for earlier in room.history():
        CHAT.send(message.reply_channel, earlier.as_json())


@channel_session_user
def chat_say(message):
    """What the user typed, {"text": ...} on the stream "chat": hand it to
    chat.messages."""
    room = message.channel_session.get("room")
    payload = message.payload
    text = payload.get("text") if isinstance(payload, dict) else None
    if room is None or not message.user.is_authenticated or not isinstance(text, str):
        return
    text = text.strip()[:MAX_TEXT_LENGTH]
    if text:
        Channel(MESSAGES_CHANNEL).send({"room": room, "user": message.user.pk, "text": text})


# What the browser sends: each frame runs the consumer of its stream, in
# the order typed.
chat_receive = enforce_ordering(Demultiplexer({"chat": chat_say}))


def save_message(message):
    """Save one message, then send it to everyone in the room."""
    room = Room.objects.filter(name=message["room"]).first()
    user = get_user_model().objects.filter(pk=message["user"]).first()
    if room is None or user is None:
        logger.warning("Dropped a message for room %r by user %r: no longer exists",
                       message["room"], message["user"])
        return
    saved = Message.objects.create(room=room, user=user, text=message["text"])
    CHAT.send(room_group(room.name), saved.as_json())


@channel_session_user
def chat_keepalive(message):
    """Membership expires; renew it while the socket is open (which also
    adds it back to a Redis server that restarted, and lost it)."""
    room = message.channel_session.get("room")
    if room is not None and message.user.is_authenticated:
        join_room(message, room)


@enforce_ordering
@channel_session
def chat_disconnect(message):
    """Leave the room, and its presence. (The connection's session is
    deleted once this has run, and a keepalive that runs later does not
    bring it back.)"""
    room = message.channel_session.get("room")
    if room is not None:
        room_presence(room).remove(message.reply_channel)
