"""Consumers that log a WebSocket in from the browser's session, for the
live tests of channel sessions (test_channel_sessions.py)."""

from channels.auth import channel_session_user, transfer_user
from channels.decorators import channel_session


@transfer_user
def connect(message):
    message.reply_channel.send({"accept": True})


@channel_session_user
def receive(message):
    message.reply_channel.send({"text": message.user.get_username() or "anonymous"})


@channel_session
def keepalive(message):
    """Renews the connection's channel session while it is idle."""


@channel_session
def disconnect(message):
    """The channel session is deleted after this consumer."""


routing = {
    "websocket.connect": connect,
    "websocket.receive": receive,
    "websocket.keepalive": keepalive,
    "websocket.disconnect": disconnect,
}
