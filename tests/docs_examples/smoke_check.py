"""The deployment check of docs/deploying.rst."""

# docs: start
import time

from channels import Channel, channel_backends


def check_echo(alias="default", timeout=5.0):
    """Send a message through the channel layer to the built-in
    ``__channels__.echo`` consumer and wait for a worker to echo it back.
    Returns the round trip in seconds."""
    reply_to = Channel.new_name("!smoke.check")
    started = time.monotonic()
    Channel("__channels__.echo", alias=alias).send({"reply_channel": reply_to})
    _, answer = channel_backends[alias].receive_many_blocking([reply_to], timeout)
    if answer is None:
        raise RuntimeError(f"No worker answered on backend {alias!r} within {timeout} s")
    return time.monotonic() - started
# docs: end
