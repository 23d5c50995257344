"""Settings of the processes of the fault report (benchmarks/faults.py):
testproject on the Redis shards the report passes in CHANNELS_REDIS_HOSTS,
with two extra views (benchmarks/fault_views.py), and channels' log lines
on stderr, where the report reads what an operator would see."""

import os

from testproject.settings import *  # noqa: F403

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        "ROUTING": "testproject.routing.channel_routing",
        "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
        # The defaults, or the report's --quick ones.
        "HEARTBEAT_INTERVAL": float(os.environ.get("CHANNELS_HEARTBEAT_INTERVAL", 5)),
        "HEARTBEAT_TTL": float(os.environ.get("CHANNELS_HEARTBEAT_TTL", 15)),
    }
}
ROOT_URLCONF = "benchmarks.fault_views"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
DEBUG = False
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "channels": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
