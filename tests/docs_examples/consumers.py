"""Consumers shown in docs/routing.rst and docs/concepts.rst."""

# docs: start
import logging

logger = logging.getLogger(__name__)


def log_line(message):
    """Keep a record of each chat line, away from the request that sent it."""
    logger.info("%s: %s", message["room"], message["text"])


def word_count(message):
    """Answer on the reply channel, when the sender gave one."""
    count = len(message["text"].split())
    if message.reply_channel is not None:
        message.reply_channel.send({"count": count})
# docs: end
