"""The production channel layer settings of docs/deploying.rst."""

# docs: start
import os

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        # One URL per Redis server, separated by spaces, the same list in
        # the same order on every machine: the order decides where each
        # channel lives.
        "HOSTS": os.environ.get("CHANNELS_REDIS_HOSTS", "redis://127.0.0.1:6379/0").split(),
        "ROUTING": "tests.docs_examples.routing.channel_routing",
        "CHANNEL_CAPACITY": {"http.request": 200, "!*": 20},
    },
}
# docs: end
