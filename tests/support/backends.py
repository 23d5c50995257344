"""Backends for tests of commands that refuse local_only backends."""

from channels.backends.memory import InMemoryChannelBackend


class SharedMemoryBackend(InMemoryChannelBackend):
    """The in-memory backend, declared shareable so that ``runworker`` can be
    run inside the test process, where the test sends its messages."""

    local_only = False
