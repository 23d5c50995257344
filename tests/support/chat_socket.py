"""The chat (docs/guide/chat) as a raw WebSocket client sees it: its
frames are chat messages, and presence messages on the stream
"presence" (docs/presence.rst), which tests of the chat itself skip."""

import json


def next_chat_message(socket) -> dict:
    """The next chat message a websocket-client ``socket`` receives."""
    while True:
        message = json.loads(socket.recv())
        if "stream" not in message:
            return message
