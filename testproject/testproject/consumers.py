"""WebSocket consumers of the demo, dispatched by path: one consumer owns
each channel, so the project's consumer picks the endpoint."""

ECHO_PATH = "/ws/echo/"


def ws_receive(message):
    if message["path"] == ECHO_PATH:
        echo(message)


def echo(message):
    """Send each frame back as it came, text as text and binary as binary."""
    if "text" in message.content:
        message.reply_channel.send({"text": message["text"]})
    else:
        message.reply_channel.send({"bytes": message["bytes"]})
