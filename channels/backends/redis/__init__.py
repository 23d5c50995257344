"""The Redis channel backend, sharded over several servers.

Where each rule lives: ``hosts`` reads the HOSTS setting; ``sharding`` holds
the placement rules of docs/scaling.rst; ``layout`` the keys and the stored
entries; ``sending`` how a batch reaches the shards (retries included);
``receiving`` which keys a receive reads and how what it took becomes
messages; ``scripts`` the Lua that runs on each shard. These do no I/O.
Two clients drive them: ``backend`` (the backend itself, blocking, with
``shard``, one server's connections and outage handling, and ``blocking``,
the wait on several shards at once) and ``reactor`` (the interface server's
layer client, on a Twisted reactor, over ``resp`` connections). A shard
that Redis Sentinel manages is found through its sentinels by ``sentinel``
(blocking) and ``reactor_sentinel`` (on the reactor). ``status`` reads
what each shard holds, for ``status()``.
"""

from channels.backends.redis.backend import RedisChannelBackend

__all__ = ["RedisChannelBackend"]
