"""The project's WebSocket consumer: one consumer owns each channel, so this
one picks the endpoint by the socket's path and hands the message on."""

import re

from chat.consumers import websocket_consumers as chat_consumers

ECHO_PATH = "/ws/echo/"


def echo(message):
    """Send each frame back as it came, text as text and binary as binary."""
    if "text" in message.content:
        message.reply_channel.send({"text": message["text"]})
    else:
        message.reply_channel.send({"bytes": message["bytes"]})


# docs: endpoints
# (path pattern, {channel: consumer}); named groups of the pattern are
# passed to the consumer as keyword arguments.
ENDPOINTS = [
    (re.compile(r"/ws/echo/"), {"websocket.receive": echo}),
    (re.compile(r"/ws/chat/(?P<room_name>[-\w]+)/"), chat_consumers),
]


def websocket(message):
    """Run the consumer of the message's endpoint. A socket to any other
    path is refused at connect."""
    for pattern, consumers in ENDPOINTS:
        match = pattern.fullmatch(message["path"])
        if match:
            consumer = consumers.get(message.channel.name)
            if consumer is not None:
                consumer(message, **match.groupdict())
            return
    if message.channel.name == "websocket.connect":
        message.reply_channel.send({"accept": False})
# docs: end endpoints


# The name testproject/benchmarks/websocket_consumers.py routes for the echo.
ws_receive = websocket
