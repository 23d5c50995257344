"""Settings for the idle-socket benchmark (benchmarks/idle.py): testproject
on Redis with the default EXPIRY, GROUP_EXPIRY and heartbeats, room in
websocket.connect and websocket.receive for every socket's handshake and
echo at once, and a routing whose connect consumer adds every socket to one group."""

import os

from testproject.settings import *  # noqa: F403

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        "ROUTING": "benchmarks.idle_consumers.routing",
        "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
        "CHANNEL_CAPACITY": {"websocket.connect": 2000, "websocket.receive": 200000},
    }
}
CHANNELS_SERVER = {"WEBSOCKET_KEEPALIVE": os.environ.get("IDLE_KEEPALIVE") == "1"}
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEBUG = False
