"""The channel layer on Redis Sentinel of docs/deploying.rst."""

# docs: start
SENTINELS = "10.0.0.21:26379,10.0.0.22:26379,10.0.0.23:26379"

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        # Two shards, each a master with a replica, watched by the same
        # three sentinels, which know them as shard-a and shard-b.
        "HOSTS": [
            f"sentinel://:s3cret@{SENTINELS}/shard-a?sentinel_password=sentinel-s3cret",
            f"sentinel://:s3cret@{SENTINELS}/shard-b?sentinel_password=sentinel-s3cret",
        ],
        "ROUTING": "tests.docs_examples.routing.channel_routing",
    },
}
# docs: end
