"""Groups on the Redis backend (``channels.backends.membership``): members
added, discarded and read on the group's shard, closed sockets leaving on
every shard, and a group message sent in one call per shard with members.
The keys and the Lua: ``group_scripts.py`` and ``layout.py``."""

from __future__ import annotations

import secrets

from channels.backends.membership import bound_process
from channels.backends.redis.layout import now_ms
from channels.exceptions import ChannelBackendUnavailable


class RedisGroups:
    """The group calls of ``RedisChannelBackend``, which gives the shards,
    placement, layout and ``_group_targets`` (where a group's members'
    messages go, by group: its version and targets)."""

    def _group_add(self, group, channel, expiry, process):
        shard = self.shards[self.placement.group_shard(group)]
        shard.script("GROUP_ADD", *self.layout.group_add_call(
            group, channel, expiry, process, self.group_expiry, now_ms(), secrets.token_hex(8)))

    def _group_discard(self, group, channel):
        shard = self.shards[self.placement.group_shard(group)]
        shard.script("GROUP_DISCARD", *self.layout.group_discard_call(
            group, channel, bound_process(channel), secrets.token_hex(8)))

    def _discard_from_groups(self, process, channels):
        """On every shard: a socket's groups may be on any."""
        self._on_every_shard("GROUP_LEAVE", [], self.layout.group_leave_args(
            process, channels, secrets.token_hex(8)))

    def _members(self, group: str, known: bytes = b"") -> list[bytes]:
        """``[version]`` if the group's members are still those of version
        ``known``, else ``[version, members space-separated]``."""
        shard = self.shards[self.placement.group_shard(group)]
        return shard.script("GROUP_MEMBERS", *self.layout.group_members_call(
            group, now_ms(), known, secrets.token_hex(8)))

    def _group_channels(self, group):
        return self._members(group)[1].decode().split()

    def _send_group(self, group, data):
        """One call per shard with members, the group's own first. Where the
        members' messages go is remembered with the group's version, as
        members mostly stay the same from one message to the next: the call
        to the group's shard checks the version and sends in one go, and
        only when the members changed does it answer them instead, to be
        routed again."""
        now = now_ms()
        home = self.placement.group_shard(group)
        known = self._group_targets.get(group)
        sent_home = False
        if known is None:
            targets = self._remember(group, self._members(group))
            normal = self._normal(targets)
        else:
            targets = known[1]
            normal = self._normal(targets)
            check = self.layout.group_check(group, known[0], secrets.token_hex(8))
            changed = self._group_send(home, targets, now, data, check, normal)
            if changed is None:
                sent_home = True
            else:
                targets = self._remember(group, changed)
                normal = self._normal(targets)
        shards = {index for index in targets if index is not None} | {normal}
        shards.discard(None)
        if sent_home:
            shards.discard(home)
        error = None
        for index in sorted(shards):
            try:
                self._group_send(index, targets, now, data, normal=normal)
            except ChannelBackendUnavailable as exc:
                self.shards[index].lost()
                error = exc  # the other shards' members still get it
        if error is not None:
            raise error

    def _normal(self, targets: dict) -> int | None:
        """The shard for a group's normal channels (rare in a group): the
        next in turn."""
        return self.spread(self.shards)[0].index if None in targets else None

    def _remember(self, group: str, reply: list[bytes]) -> dict:
        targets = self.layout.group_targets(reply[1])
        if len(self._group_targets) >= 1024:
            self._group_targets.clear()
        self._group_targets[group] = (reply[0], targets)
        return targets

    def _group_send(self, index: int, targets: dict, now: int, data: bytes,
                    check: list | None = None, normal: int | None = None) -> list | None:
        args = self.layout.group_send_args(index, targets, now, data, check, normal)
        return self.shards[index].script("GROUP_SEND", [], args)
