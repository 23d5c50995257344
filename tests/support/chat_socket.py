"""The chat (docs/guide/chat) as a raw WebSocket client sees it: frames on
streams (docs/client.rst), the chat's on the stream "chat", and who is
online on the stream "presence" (docs/presence.rst), which tests of the
chat itself skip."""

import json


def say(socket, text: str) -> None:
    """Type ``text`` in the chat, on a websocket-client ``socket``."""
    socket.send(json.dumps({"stream": "chat", "payload": {"text": text}}))


def next_chat_message(socket) -> dict:
    """The payload of the next frame on the chat's stream."""
    while True:
        envelope = json.loads(socket.recv())
        if envelope["stream"] != "presence":
            assert envelope["stream"] == "chat", envelope
            return envelope["payload"]
