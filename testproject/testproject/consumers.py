"""The project's WebSocket consumer: one consumer owns each channel, so this
one hands each message to the chat (the guide's, docs/guide/chat) or, on
/ws/echo/, to the echo the benchmarks and the conformance suite use."""

from chat import consumers as chat

ECHO_PATH = "/ws/echo/"

CHAT = {
    "websocket.connect": chat.chat_connect,
    "websocket.receive": chat.chat_receive,
    "websocket.keepalive": chat.chat_keepalive,
    "websocket.disconnect": chat.chat_disconnect,
}


def echo(message):
    """Send each frame back as it came, text as text and binary as binary."""
    if "text" in message.content:
        message.reply_channel.send({"text": message["text"]})
    else:
        message.reply_channel.send({"bytes": message["bytes"]})


def websocket(message):
    """Echo on /ws/echo/ (whose sockets are accepted as connect returns);
    the chat's consumer everywhere else, which refuses other paths."""
    if message["path"] == ECHO_PATH:
        if message.channel.name == "websocket.receive":
            echo(message)
        return
    CHAT[message.channel.name](message)


# The name testproject/benchmarks/websocket_consumers.py routes for the echo.
ws_receive = websocket
