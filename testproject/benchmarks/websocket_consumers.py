"""Consumers of the WebSocket benchmark: testproject's echo, plus a group."""

from channels import Group

GROUP = "benchmark"


def connect(message):
    """Join the group: the socket stays in it while open (no keepalive)."""
    if message["path"] == "/ws/group/":
        Group(GROUP).add(message.reply_channel)


def disconnect(message):
    if message["path"] == "/ws/group/":
        Group(GROUP).discard(message.reply_channel)


routing = {
    "websocket.connect": connect,
    "websocket.disconnect": disconnect,
    "websocket.receive": "testproject.consumers.ws_receive",
}
