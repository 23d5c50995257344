"""Settings of the fairness measurements: testproject on Redis, with the
issue's websocket.receive capacity of 100 and the fairness consumers."""

import os

from testproject.settings import *  # noqa: F403

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        "ROUTING": "benchmarks.fairness_consumers.routing",
        "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
        "CHANNEL_CAPACITY": {"websocket.receive": 100},
    }
}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEBUG = False
