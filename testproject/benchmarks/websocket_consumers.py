"""Consumers of the WebSocket benchmark: testproject's echo, plus a group."""

from channels import Group

GROUP = "benchmark"


def connect(message):
    if message["path"] == "/ws/group/":
        Group(GROUP).add(message.reply_channel)


routing = {
    "websocket.connect": connect,
    "websocket.receive": "testproject.consumers.ws_receive",
}
