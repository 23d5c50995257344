"""Tools for testing consumers with Django's test runner."""

from channels.testing.cases import ChannelTestCase, isolated_channel_backends
from channels.testing.live import ChannelLiveServerTestCase

__all__ = ["ChannelLiveServerTestCase", "ChannelTestCase", "isolated_channel_backends"]
