"""Consumers of the presence tests with real processes
(test_presence_processes), run by ``runworker``: a socket at
``/room/?user=<key>`` is in the presence ``presence-room`` under that key
while it is open."""

from channels.presence import Presence

ROOM = "presence-room"


def connect(message):
    message.reply_channel.send({"accept": True})
    keepalive(message)


def keepalive(message):
    user = message["query"]["user"][0]
    Presence(ROOM).add(message.reply_channel, user, {"name": user})


def disconnect(message):
    Presence(ROOM).remove(message.reply_channel)


routing = {
    "websocket.connect": connect,
    "websocket.keepalive": keepalive,
    "websocket.disconnect": disconnect,
}
