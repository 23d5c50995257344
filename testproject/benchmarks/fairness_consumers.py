"""Consumers of the fairness measurements (benchmarks/fairness.py): a slow
echo, and a firehose of 500 KB messages to a client that reads nothing,
which stops once the socket has closed."""

import time

from channels.exceptions import ChannelFull
from channels.worker.sending import send_patiently


def closed_mark(message) -> str:
    """A lock name that the disconnect consumer takes for the socket."""
    return "firehose.closed." + message["reply_channel"].rsplit("!", 1)[-1].replace(".", "")


def receive(message):
    if message["path"] == "/firehose/":
        # For as many seconds as the text says, or until the socket has
        # closed; each send waits while the client is behind, as a
        # consumer's should.
        backend = message.channel_backend
        mark = closed_mark(message)
        end = time.monotonic() + float(message["text"])
        try:
            while time.monotonic() < end:
                send_patiently(backend, message.reply_channel.name,
                               {"bytes": b"x" * 500_000}, max(end - time.monotonic(), 0.01))
                token = backend.lock_channel(mark, 1)
                if token is None:
                    return
                backend.unlock_channel(mark, token)
        except ChannelFull:
            pass
        return
    time.sleep(0.02)
    message.reply_channel.send({"text": message["text"]})


def disconnect(message):
    if message["path"] == "/firehose/":
        message.channel_backend.lock_channel(closed_mark(message), 60)


routing = {"websocket.receive": receive, "websocket.disconnect": disconnect}
