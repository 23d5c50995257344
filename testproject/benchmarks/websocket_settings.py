"""Settings for the WebSocket benchmark: testproject on Redis, and a
routing that adds /ws/group/ sockets to the broadcast group."""

import os

from testproject.settings import *  # noqa: F403

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        "ROUTING": "benchmarks.websocket_consumers.routing",
        "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
        "EXPIRY": 20,
    }
}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEBUG = False
