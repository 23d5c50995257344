"""Several logical streams over one WebSocket: the server's half of the
JavaScript client's streams (channels/static/channels/client.js, docs/client.rst).

Each text frame is a JSON envelope ``{"stream": name, "payload": ...}``,
both ways. A ``Demultiplexer`` is the ``websocket.receive`` consumer: it
reads the envelope and runs the plain consumer function routed for that
stream, which finds the payload on the message and replies through its
stream without knowing about envelopes. The socket's own messages (connect,
keepalive, disconnect) are not a stream's: they stay the application's
consumers, which decide whether a connection is accepted and what each
stream needs on connect and on disconnect. The envelope itself, built and
read, is ``channels.messages.streams``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from channels.channel import Channel, Group
from channels.message import Message
from channels.messages.streams import (
    MAX_STREAM_NAME,
    check_stream_name,
    error_message,
    parse_receive,
    payload_message,
)

__all__ = ["MAX_STREAM_NAME", "Demultiplexer", "Stream", "StreamReply"]

logger = logging.getLogger("channels.streams")

StreamConsumer = Callable[[Message], object]


class Stream:
    """A stream by name: ``Stream("chat").send(Group("room"), payload)``
    sends ``{"stream": "chat", "payload": payload}`` as one text frame to
    every socket in the group (or to one reply channel). The payload is
    anything ``json.dumps`` encodes."""

    def __init__(self, name: str):
        self.name = check_stream_name(name)

    def frame(self, payload: Any) -> dict[str, str]:
        """The reply channel message that carries ``payload`` on this stream."""
        return payload_message(self.name, payload)

    def send(self, target: Channel | Group, payload: Any) -> None:
        target.send(self.frame(payload))

    def __repr__(self) -> str:
        return f"<Stream {self.name!r}>"


class StreamReply:
    """``message.reply_stream`` of a stream consumer: replies to the socket
    the message came from, on the message's stream."""

    def __init__(self, stream: Stream, channel: Channel):
        self.stream = stream
        self.channel = channel

    def send(self, payload: Any) -> None:
        self.stream.send(self.channel, payload)


class Demultiplexer:
    """The ``websocket.receive`` consumer of a socket that carries streams:
    ``Demultiplexer({"chat": chat_say, "typing": typing})``.

    The stream's consumer gets the same ``Message`` (content, channel
    session, user: decorate the demultiplexer or the stream consumers as
    any consumer), with three attributes added: ``stream`` (a ``Stream``),
    ``payload`` (the decoded payload) and ``reply_stream`` (a
    ``StreamReply``). A frame that is not an envelope of a known stream
    runs no consumer: it is logged once, as a warning, and the socket is
    answered ``{"stream": name, "error": why}`` (``name`` null when the
    frame named no stream) and stays open, so that one bad frame loses
    nothing else.
    """

    def __init__(self, streams: Mapping[str, StreamConsumer]):
        self.consumers: dict[str, StreamConsumer] = {}
        for name, consumer in streams.items():
            if not callable(consumer):
                raise TypeError(f"The consumer of stream {name!r} is not callable: "
                                f"{consumer!r}")
            self.consumers[check_stream_name(name)] = consumer
        # What logs call it (a worker's "Error in consumer ..."), also
        # through decorators, which copy it.
        self.__name__ = self.__qualname__ = f"Demultiplexer({', '.join(self.consumers)})"

    def __call__(self, message: Message) -> object:
        if message.reply_channel is None or not ({"text", "bytes"} & message.content.keys()):
            raise TypeError(f"{self!r} consumes websocket.receive messages, not "
                            f"{message!r}: route the socket's connect and disconnect to "
                            f"consumers of their own")
        stream, payload, error = parse_receive(message.content, self.consumers)
        if error is not None:
            logger.warning("Refused a frame from %s: %s", message.reply_channel.name, error)
            message.reply_channel.send(error_message(stream, error))
            return None
        message.stream = Stream(stream)
        message.payload = payload
        message.reply_stream = StreamReply(message.stream, message.reply_channel)
        return self.consumers[stream](message)

    def __repr__(self) -> str:
        return f"<{self.__qualname__}>"
