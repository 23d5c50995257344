"""Consumers behind the idle-socket tests (test_idle_sockets), run by a real
``runworker``: a socket joins the group ``room`` when it connects and is
never discarded by a consumer; ``websocket.keepalive`` is routed the old
way (re-adding the socket), to show that none is sent unless asked for."""

from channels.channel import Group


def join(message):
    Group("room", channel_backend=message.channel_backend).add(message.reply_channel)


def echo(message):
    message.reply_channel.send({"text": message["text"]})


routing = {"websocket.connect": join, "websocket.receive": echo, "websocket.keepalive": join}
