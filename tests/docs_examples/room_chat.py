"""The small chat of docs/coming-from-asgi-channels.rst, in this project's
style: the room comes from the socket's path, everyone in a room hears
everything said in it (tests/test_docs_examples.py runs it)."""

# docs: start
# chat/consumers.py
import re

from channels import Group

ROOM_PATH = re.compile(r"/ws/chat/(?P<room>\w+)/")


def room(message):
    """The room's group, from the socket's path (every WebSocket message
    carries it)."""
    return Group("chat-" + ROOM_PATH.fullmatch(message["path"])["room"])


def ws_connect(message):
    if ROOM_PATH.fullmatch(message["path"]) is None:
        message.reply_channel.send({"accept": False})  # the handshake gets 403
        return
    room(message).add(message.reply_channel)
    message.reply_channel.send({"accept": True})


def ws_receive(message):
    room(message).send({"text": message["text"]})


def ws_disconnect(message):
    room(message).discard(message.reply_channel)


# mysite/routing.py (CHANNEL_BACKENDS' ROUTING names this dict)
channel_routing = {
    "websocket.connect": ws_connect,
    "websocket.receive": ws_receive,
    "websocket.disconnect": ws_disconnect,
}
# docs: end
