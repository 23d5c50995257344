"""Settings shown in docs/installation.rst."""

# docs: installed-apps
INSTALLED_APPS = [
    # Above django.contrib.staticfiles: both have a runserver command, and
    # the first app's runs; only channels' serves WebSockets.
    "channels",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.staticfiles",
    # ... your own apps, each of which may have a consumers.py
]
# docs: end

# docs: channel-backends
CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": "tests.docs_examples.routing.channel_routing",
        "EXPIRY": 60,  # seconds an unread message waits before it is dropped
        "CAPACITY": 100,  # messages a channel holds before sends raise ChannelFull
        "CHANNEL_CAPACITY": {"http.request": 200, "!*": 20},
        "GROUP_EXPIRY": 86400,  # seconds a group member stays without being re-added
    },
}
# docs: end
