"""docs/client.rst: two streams over one socket. "echo" sends each
payload back; "count" counts the payloads of its connection (in the channel
session) and tells every socket in the "counted" group. Run by
tests/test_streams.py and, in Chromium, tests/test_client_browser.py."""

from channels import Group
from channels.decorators import channel_session, enforce_ordering
from channels.streams import Demultiplexer, Stream

COUNT = Stream("count")
COUNTED = Group("counted")


def echo(message):
    message.reply_stream.send(message.payload)


@channel_session
def count(message):
    total = message.channel_session.get("count", 0) + 1
    message.channel_session["count"] = total
    COUNTED.add(message.reply_channel)
    COUNT.send(COUNTED, {"count": total, "last": message.payload})


receive = enforce_ordering(Demultiplexer({"echo": echo, "count": count}))

channel_routing = {"websocket.receive": receive}
