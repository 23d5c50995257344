"""Routing used by the test settings."""

channel_routing = {
    "tests.echo": "channels.consumers.echo",
}
