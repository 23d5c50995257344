"""The Redis channel backend, sharded over several servers.

``backend`` is the backend itself; ``hosts`` reads the HOSTS setting,
``sharding`` holds the placement rules of docs/scaling.rst, ``scripts`` the
Lua that runs on each shard, ``shard`` one server's connections and outage
handling, and ``blocking`` the wait for a message on several shards at once.
"""

from channels.backends.redis.backend import RedisChannelBackend

__all__ = ["RedisChannelBackend"]
