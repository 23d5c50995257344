"""Tools for testing consumers with Django's test runner."""

from channels.testing.cases import ChannelTestCase, isolated_channel_backends

__all__ = ["ChannelTestCase", "isolated_channel_backends"]
