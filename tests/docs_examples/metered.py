"""The custom backend of docs/backends.rst."""

# docs: start
from collections import Counter

from channels.backends.memory import InMemoryChannelBackend


class MeteredChannelBackend(InMemoryChannelBackend):
    """The in-memory backend, counting the messages sent on channels whose
    names start with METER_PREFIX."""

    def __init__(self, *, meter_prefix: str = "", **options):
        super().__init__(**options)
        self.meter_prefix = meter_prefix
        self.sent = Counter()

    def _send(self, channel, data):
        # channel is a valid name and data encoded bytes: the base class
        # checked both. A full channel raises ChannelFull before counting.
        super()._send(channel, data)
        if channel.startswith(self.meter_prefix):
            self.sent[channel] += 1
# docs: end

# docs: settings
CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "tests.docs_examples.metered.MeteredChannelBackend",
        "METER_PREFIX": "chat.",
        "CAPACITY": 2,
    },
}
# docs: end
