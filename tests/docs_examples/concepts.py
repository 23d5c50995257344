"""The request/response example of docs/concepts.rst."""

# docs: start
from channels import Channel, channel_backends


def count_words(text, timeout=5):
    """Ask whichever worker is free to count the words of ``text``, and wait
    for its answer on a response channel made for this one question."""
    reply_to = Channel.new_name("!text.count.reply")
    Channel("text.count").send({"text": text, "reply_channel": reply_to})
    _, answer = channel_backends["default"].receive_many_blocking([reply_to], timeout)
    if answer is None:
        raise TimeoutError("No worker answered in time")
    return answer["count"]
# docs: end
