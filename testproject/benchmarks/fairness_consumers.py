"""Consumers of the fairness measurements (benchmarks/fairness.py): a slow
echo, and a firehose of 500 KB messages to a client that reads nothing."""

from channels.exceptions import ChannelFull
from channels.worker.sending import send_patiently


def receive(message):
    import time

    if message["path"] == "/firehose/":
        # As a consumer that waits while its client is behind should.
        try:
            for _ in range(int(message["text"])):
                send_patiently(message.channel_backend, message.reply_channel.name,
                               {"bytes": b"x" * 500_000}, 30)
        except ChannelFull:
            pass
        return
    time.sleep(0.02)
    message.reply_channel.send({"text": message["text"]})


routing = {"websocket.receive": receive}
