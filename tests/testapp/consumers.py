"""Consumers of the test app that autodiscovery must find."""

from channels.decorators import consumer


@consumer("testapp.greet")
def greet(message):
    message.reply_channel.send({"greeting": f"Hello, {message['name']}"})


@consumer("testapp.fail")
def fail(message):
    raise RuntimeError("testapp.fail always fails")


def ws_connect_broken(message):
    raise ValueError("cannot take this connection")
