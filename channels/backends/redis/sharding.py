"""Which shard holds what: the placement rules of docs/scaling.rst.

1. A response channel (``!`` first) made by ``channels.names.new_name``
   lives in its process's *inbox* for that prefix, on the shard its process
   token hashes to; the ``process_wildcard`` of the prefix reads the inbox.
   One process reads all of its clients' response channels with one
   blocking pop, however many clients it holds.
2. Any other response channel, any other name made by ``new_name`` (such as
   an ``http.request.body`` channel, read by one worker) and every group
   live on the shard their own name hashes to.
3. Any other (normal) channel has no home shard: each send goes to the next
   live shard in turn and workers take from all of them, so a busy channel
   such as ``http.request`` scales with the number of shards.

"Hashes to" is Lamping and Veach's jump consistent hash of ``name_hash``:
BLAKE2b with an 8-byte digest (a parameter of BLAKE2b, not a cut of its
64-byte digest) of the UTF-8 name, read as a big-endian unsigned 64-bit
integer. Every process with the same HOSTS list, in the same order, computes
the same shard, and adding an (N+1)th shard at the end of the list moves
only about 1/(N+1) of names. docs/scaling.rst gives a worked example.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

from channels.names import is_wildcard, owner_process

# Length of the per-client part of a generated name (see channels.names).
_CLIENT_TOKEN_LENGTH = 32


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash (Lamping & Veach, 2014) of a 64-bit key."""
    bucket, jump = -1, 0
    while jump < buckets:
        bucket = jump
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        jump = int((bucket + 1) * ((1 << 31) / ((key >> 33) + 1)))
    return bucket


def name_hash(name: str) -> int:
    """A 64-bit hash of ``name`` that is the same in every process
    (``hash()`` is not: it is salted per process)."""
    return int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")


def shard_for(name: str, shards: int) -> int:
    return jump_hash(name_hash(name), shards)


def inbox_of(channel: str) -> str | None:
    """The inbox a channel lives in, named like the process wildcard that
    reads it, or None if it has none (rule 1)."""
    if not channel.startswith("!") or owner_process(channel) is None:
        return None
    return channel if is_wildcard(channel) else channel[:-_CLIENT_TOKEN_LENGTH]


class Placement:
    """The rules above for one HOSTS list."""

    def __init__(self, shards: int):
        self.shards = shards
        self.home = lru_cache(maxsize=65536)(self._home)

    def _home(self, channel: str) -> tuple[int, str | None] | None:
        """``(shard, inbox or None)`` for a channel with a home shard (rules
        1 and 2); None for a normal channel, which may be on any shard."""
        inbox = inbox_of(channel)
        if inbox is not None:
            return self.inbox_shard(owner_process(inbox)), inbox
        if channel.startswith("!") or owner_process(channel) is not None:
            return shard_for(channel, self.shards), None
        return None

    def inbox_shard(self, token: str) -> int:
        """The shard of the inboxes of process token ``token``."""
        return shard_for(token, self.shards)

    def group_shard(self, group: str) -> int:
        return shard_for(group, self.shards)

    def lock_shard(self, channel: str) -> int:
        return shard_for(channel, self.shards)
