"""Consumers of the idle-socket benchmark: every socket joins one group on
connect and is echoed; ``websocket.keepalive`` adds it again, as consumers
did before memberships followed their socket, and runs only when the
benchmark turns keepalives on (``--keepalive``)."""

from channels import Group

GROUP = "idle"


def join(message):
    Group(GROUP).add(message.reply_channel)


def echo(message):
    message.reply_channel.send({"text": message["text"]})


routing = {"websocket.connect": join, "websocket.keepalive": join, "websocket.receive": echo}
