"""Consumers that every project has."""

from channels.message import Message


def echo(message: Message) -> None:
    """``__channels__.echo``: reply with the message's content, to check a
    deployment end to end."""
    if message.reply_channel is not None:
        message.reply_channel.send(message.content)
