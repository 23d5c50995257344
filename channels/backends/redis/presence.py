"""Presences on the Redis backend (``channels.backends.presence``): each in
one hash on its group's shard, changed by the scripts of
``presence_scripts.py``, which say what the keys hold.

A sweep runs on every shard that answers; a shard that is down is skipped
(its presences are out of reach until it returns, and lost if it restarts
empty).
"""

from __future__ import annotations

import math
import secrets
from typing import Any

from channels.backends.encoding import decode
from channels.backends.presence import Joined, Member, PresenceChange, change_from
from channels.backends.redis.layout import now_ms
from channels.exceptions import ChannelBackendUnavailable


def _state(flat: list) -> dict[str, Member]:
    return {flat[i].decode(): Member(decode(flat[i + 2]), int(flat[i + 1]))
            for i in range(0, len(flat), 3)}


def _change(version: Any, flat: list) -> PresenceChange:
    return change_from(int(version), [
        (flat[i].decode(), flat[i + 1].decode(), int(flat[i + 2]), decode(flat[i + 3]))
        for i in range(0, len(flat), 4)])


class RedisPresence:
    """The presence calls of ``RedisChannelBackend`` (mixed into it)."""

    def _presence_shard(self, name: str):
        return self.shards[self.placement.group_shard(name)]

    def _presence_join(self, name, channel, process, key, meta, expiry, with_state):
        now, milliseconds = now_ms(), math.ceil(expiry * 1000)
        new, version, changed, state = self._presence_shard(name).script(
            "PRESENCE_JOIN", [], [self.prefix, name, channel, process, key, meta, milliseconds,
                                  int(with_state), *self.layout.group_keys(name),
                                  now + milliseconds, now, secrets.token_hex(8)])
        return Joined(bool(new), _change(version, changed), int(version), _state(state))

    def _presence_leave(self, name, channel):
        version, changed = self._presence_shard(name).script(
            "PRESENCE_LEAVE", [], [self.prefix, name, channel, *self.layout.group_keys(name),
                                   secrets.token_hex(8)])
        return _change(version, changed)

    def _presence_members(self, name):
        version, state = self._presence_shard(name).script(
            "PRESENCE_MEMBERS", [], [self.prefix, name])
        return int(version), _state(state)

    def _presence_sweep(self, kind):
        """Every shard in turn; the next sweep is due when the first is."""
        (_, since), (records,) = self.layout.heartbeat_read(kind)
        # The keys of group "": the prefixes of every group's.
        args = [self.prefix, records, since, math.ceil(self.heartbeat_ttl * 1000),
                math.ceil(self.heartbeat_interval * 1000), *self.layout.group_keys(""),
                secrets.token_hex(8)]
        changes, due = [], self.heartbeat_interval
        for shard in self.shards:
            try:
                reply = shard.script("PRESENCE_SWEEP", [], args)
            except ChannelBackendUnavailable:
                continue  # the shard logs its outages
            due = min(due, int(reply[0]) / 1000)
            changes += [(reply[i].decode(), _change(reply[i + 1], reply[i + 2]))
                        for i in range(1, len(reply), 3)]
        return changes, max(due, 0.0)
