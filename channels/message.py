"""What a consumer receives."""

from __future__ import annotations

from typing import Any

from channels.backends.base import BaseChannelBackend
from channels.channel import Channel


class Message:
    """A message taken off a channel, with the channel it came from and,
    when the content names one, the channel to reply on."""

    class Requeue(Exception):
        """Raise in a consumer to put the message back at the head of its
        channel, to be run again (by any worker) later."""

    def __init__(self, content: dict[str, Any], channel_name: str,
                 channel_backend: BaseChannelBackend):
        self.content = content
        self.channel_backend = channel_backend
        self.channel = Channel(channel_name, channel_backend=channel_backend)
        reply = content.get("reply_channel")
        self.reply_channel = (
            Channel(reply, channel_backend=channel_backend) if reply else None
        )

    def __getitem__(self, key: str) -> Any:
        return self.content[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.content.get(key, default)

    def __repr__(self) -> str:
        return f"<Message on {self.channel.name!r}>"
