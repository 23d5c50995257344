"""Who is in a group, live (docs/presence.rst).

A ``Presence`` is named like a group, and is that group's: ``add`` joins
the group and the presence, ``remove`` leaves both, and every change is
broadcast to the group as a diff (``channels.messages.presence``). It
lives where the group does (on Redis, the group's shard).

Members whose interface process died, and members whose expiry passed,
are removed by ``sweep``, which the workers run
(``channels.worker.heartbeat``): any number of them may, each change is
broadcast by the one whose sweep made it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from channels.backends import DEFAULT_CHANNEL_BACKEND
from channels.backends.base import BaseChannelBackend
from channels.backends.presence import Member, PresenceChange
from channels.channel import Channel, Group
from channels.exceptions import ChannelFull
from channels.heartbeats import INTERFACE
from channels.messages.presence import diff_message, state_message

__all__ = ["Member", "Presence", "sweep"]

logger = logging.getLogger("channels.presence")


class Presence:
    """The members of group ``name``, per key (a user: several tabs count
    once, with their number of connections). Cheap to create; holds no
    connection."""

    def __init__(self, name: str, alias: str = DEFAULT_CHANNEL_BACKEND,
                 channel_backend: BaseChannelBackend | None = None):
        self.group = Group(name, alias, channel_backend)
        self.name = self.group.name

    @property
    def channel_backend(self) -> BaseChannelBackend:
        return self.group.channel_backend

    def add(self, reply_channel: Channel | str, key: str, meta: Mapping[str, Any] | None = None,
            expiry: float | None = None) -> bool:
        """Add a connection (its reply channel) under ``key`` with ``meta``
        (what the others see of it: JSON-compatible), to the group too, for
        ``expiry`` seconds (default GROUP_EXPIRY); or renew it, as a
        consumer of ``websocket.keepalive`` does. A new connection is sent
        the state; a change is broadcast. Returns whether it was new."""
        backend = self.channel_backend
        expiry = backend.group_expiry if expiry is None else expiry
        joined = backend.presence_join(self.name, str(reply_channel), key, meta or {}, expiry)
        self.broadcast(joined.change)
        if joined.new:
            try:
                backend.send(str(reply_channel), state_message(joined.version, joined.members))
            except ChannelFull:
                logger.warning("Could not send the presence of %s to %s: its channel is full",
                               self.name, reply_channel)
        return joined.new

    def remove(self, reply_channel: Channel | str) -> bool:
        """Remove a connection from the presence and the group; returns
        whether it was there."""
        change = self.channel_backend.presence_leave(self.name, str(reply_channel))
        self.broadcast(change)
        return bool(change)

    def list(self) -> dict[str, Member]:
        """``{key: Member(meta, connections)}`` of the keys present."""
        return self.channel_backend.presence_members(self.name)[1]

    def broadcast(self, change: PresenceChange) -> None:
        """Send ``change`` to the group, if it changed anything."""
        if change:
            self.group.send(diff_message(change))

    def __repr__(self) -> str:
        return f"<Presence {self.name!r}>"


def sweep(backend: BaseChannelBackend) -> float:
    """Remove the members of interface processes that died and those
    expired, broadcasting their leaves; returns the seconds until the next
    sweep is due. Cheap when not due: workers call it every time it is."""
    changes, due = backend.presence_sweep(INTERFACE)
    for name, change in changes:
        Presence(name, channel_backend=backend).broadcast(change)
    return due
