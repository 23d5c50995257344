"""Presence messages (docs/message-standards.rst, "Presence"): what the
members of a presence (``channels.presence.Presence``) are sent, as
WebSocket text frames of JSON on the stream ``"presence"``. Nothing here
does I/O.

``state_message(version, members) -> dict``
    Sent to a new member: everyone present, ``{"event": "state",
    "version": v, "members": {key: {"meta": {...}, "connections": n}}}``.
``diff_message(change) -> dict``
    Broadcast to the group on each change: ``{"event": "diff", "version":
    v, "joins": {key: member}, "updates": {key: member}, "leaves": {key:
    {"meta": {...}}}}``.

Both are ``websocket.send`` content in the stream envelope
(``channels.messages.streams``): ``{"text": '{"stream": "presence",
"payload": ...}'}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from channels.messages.streams import payload_message

STREAM = "presence"


def _member(member: Any) -> dict[str, Any]:
    meta, connections = member
    return {"meta": meta, "connections": connections}


def state_message(version: int, members: Mapping[str, Any]) -> dict[str, Any]:
    """``members``: key to ``(meta, connections)``."""
    return payload_message(STREAM, {
        "event": "state",
        "version": version,
        "members": {key: _member(member) for key, member in members.items()},
    })


def diff_message(change: Any) -> dict[str, Any]:
    """``change``: a ``channels.backends.presence.PresenceChange``."""
    return payload_message(STREAM, {
        "event": "diff",
        "version": change.version,
        "joins": {key: _member(member) for key, member in change.joins.items()},
        "updates": {key: _member(member) for key, member in change.updates.items()},
        "leaves": {key: {"meta": meta} for key, meta in change.leaves.items()},
    })
