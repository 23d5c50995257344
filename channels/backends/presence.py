"""The presence part of the backend contract: who is in a group
(``channels.presence.Presence``; docs/presence.rst).

A presence is named like its group and kept where the group is (on the
Redis backend, the group's shard). It maps each member's reply channel to
a *key* (one per user, however many tabs) and the key's metadata. Every
change is atomic in the store and answered with what it changed, so that
exactly one caller learns of each join and each leave and broadcasts it.

The members' interface processes are recorded (the process token of their
reply channel, ``channels.names.owner_process``), so that a *sweep* can
remove at once every member of a process whose heartbeat expired, and the
members whose own expiry passed (a lost ``websocket.disconnect``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from channels.names import owner_process, validate_name

# A reply channel not made by ``new_name`` has no interface process: it
# leaves only when removed or expired.
NO_PROCESS = "-"
MAX_KEY_LENGTH = 200


class Member(NamedTuple):
    """One key of a presence: its metadata (of its latest connection) and
    how many connections it has."""

    meta: dict[str, Any]
    connections: int


class PresenceChange(NamedTuple):
    """What one atomic change did to a presence, at ``version``:
    ``joins`` (keys that came online), ``updates`` (keys still online whose
    connections or metadata changed) and ``leaves`` (keys gone offline,
    with their last metadata). ``version`` grows with each change of the
    presence, also across a restart of its store (it starts from the
    store's clock), so a client can drop what is older than what it has."""

    version: int
    joins: dict[str, Member]
    updates: dict[str, Member]
    leaves: dict[str, dict[str, Any]]

    def __bool__(self) -> bool:
        return bool(self.joins or self.updates or self.leaves)


NO_CHANGE = PresenceChange(0, {}, {}, {})


class Joined(NamedTuple):
    """What ``presence_join`` did: whether the connection is new (not a
    renewal), the change to broadcast, and for a new connection the
    presence as it is after the change (``version``, ``members``)."""

    new: bool
    change: PresenceChange
    version: int
    members: dict[str, Member]


def check_key(key: object) -> str:
    if not isinstance(key, str) or not key or len(key) > MAX_KEY_LENGTH:
        raise ValueError(f"A presence key is a non-empty str of up to {MAX_KEY_LENGTH} "
                         f"characters, not {key!r}")
    return key


def process_of(channel: str) -> str:
    """The token of the interface process holding ``channel``, or NO_PROCESS."""
    return owner_process(channel) or NO_PROCESS


def change_from(version: int, entries: list[tuple[str, str, int, dict[str, Any]]]
                ) -> PresenceChange:
    """A change from ``(kind, key, connections, meta)`` entries, kind
    ``"j"``, ``"u"`` or ``"l"`` (the Redis scripts' replies, decoded)."""
    change = PresenceChange(version, {}, {}, {})
    for kind, key, connections, meta in entries:
        if kind == "l":
            change.leaves[key] = meta
        else:
            (change.joins if kind == "j" else change.updates)[key] = Member(meta, connections)
    return change


class PresenceContract:
    """The presence calls of ``BaseChannelBackend``: validated here, kept
    by the underscore methods a backend implements (metadata arrives
    encoded, and is given back decoded by ``decode_meta``)."""

    def presence_join(self, name: str, channel: str, key: str, meta: Mapping[str, Any],
                      expiry: float, with_state: bool = True) -> Joined:
        """Add ``channel`` under ``key`` to presence ``name``, and to the
        group ``name``, for ``expiry`` seconds, or renew it (then the change
        is empty unless ``meta`` changed): one atomic change.
        ``with_state``: also give the members if it is new."""
        channel = validate_name(channel)
        return self._presence_join(validate_name(name, "group"), channel, process_of(channel),
                                   check_key(key), self.encode_meta(meta), expiry, with_state)

    def presence_leave(self, name: str, channel: str) -> PresenceChange:
        """Remove ``channel`` from the presence and its group; an empty
        change if it was not a member."""
        return self._presence_leave(validate_name(name, "group"), validate_name(channel))

    def presence_members(self, name: str) -> tuple[int, dict[str, Member]]:
        """``(version, {key: Member})``."""
        return self._presence_members(validate_name(name, "group"))

    def presence_sweep(self, kind: str) -> tuple[list[tuple[str, PresenceChange]], float]:
        """Remove the members whose process (a heartbeat of ``kind``) has no
        live record, and those expired, from their presences and groups;
        ``([(presence, change)], seconds until the next sweep is due)``.
        Each removal is answered to one caller only, however many sweep at
        once; a call before the next sweep is due removes nothing."""
        return self._presence_sweep(kind)

    # Implemented by each backend that keeps presences.

    def encode_meta(self, meta: Mapping[str, Any]) -> bytes:
        """``meta`` checked and encoded as a message is (the base class)."""
        raise NotImplementedError

    def _presence_join(self, name: str, channel: str, process: str, key: str, meta: bytes,
                       expiry: float, with_state: bool) -> Joined:
        raise NotImplementedError

    def _presence_leave(self, name: str, channel: str) -> PresenceChange:
        raise NotImplementedError

    def _presence_members(self, name: str) -> tuple[int, dict[str, Member]]:
        raise NotImplementedError

    def _presence_sweep(self, kind: str) -> tuple[list[tuple[str, PresenceChange]], float]:
        raise NotImplementedError
