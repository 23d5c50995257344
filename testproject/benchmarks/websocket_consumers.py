"""Consumers of the WebSocket benchmark: testproject's echo, plus a group."""

from channels import Group

GROUP = "benchmark"


def connect(message):
    """Join the group; keepalives renew the membership before it expires."""
    if message["path"] == "/ws/group/":
        Group(GROUP).add(message.reply_channel)


def disconnect(message):
    if message["path"] == "/ws/group/":
        Group(GROUP).discard(message.reply_channel)


routing = {
    "websocket.connect": connect,
    "websocket.keepalive": connect,
    "websocket.disconnect": disconnect,
    "websocket.receive": "testproject.consumers.ws_receive",
}
