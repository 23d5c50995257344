"""The group membership part of the backend contract: adding, discarding
and listing members, and what a member's life is tied to.

A WebSocket's reply channel (``!websocket.send.<process>-<client>``, made
by ``new_name``) added to a group without an ``expiry`` is a member for as
long as its socket is open and its interface process alive: no per-socket
renewal (``websocket.keepalive``) is needed. The backend ties the
membership to the heartbeat of the interface process named by the
channel's token (``channels.names.owner_process``), so that the members of
a process that dies are gone within HEARTBEAT_TTL of its last heartbeat,
and renewing them costs that process one operation per interval however
many sockets it holds; the interface server removes a closed socket from
all of its groups at once (``discard_from_groups``). A process whose
heartbeat the backend does not hold (the WSGI adapter, a backend without
heartbeats) gets the old rule: the member expires after GROUP_EXPIRY.

Any other member, and a WebSocket's added with an ``expiry``, expires
after its expiry unless added again (a WebSocket's then also leaves with
its socket or process, whichever comes first).
"""

from __future__ import annotations

from collections.abc import Iterable

from channels.names import WEBSOCKET_REPLY_PREFIX, owner_process, validate_name

_BOUND_PREFIX = WEBSOCKET_REPLY_PREFIX + "."


def bound_process(channel: str) -> str | None:
    """The token of the interface process whose liveness ``channel``'s
    memberships follow: a WebSocket reply channel's maker; None for any
    other channel."""
    return owner_process(channel) if channel.startswith(_BOUND_PREFIX) else None


def bound_by_process(channels: Iterable[str]) -> dict[str, list[str]]:
    """The bound ones of ``channels`` (valid names), by process token."""
    if isinstance(channels, str):
        raise TypeError("channels must be a list of names, not a str")
    by_process: dict[str, list[str]] = {}
    for channel in channels:
        process = bound_process(validate_name(channel))
        if process is not None:
            by_process.setdefault(process, []).append(channel)
    return by_process


def check_expiry(value: object) -> float:
    """A positive number of seconds, or ValueError (an argument of a call,
    not a setting: the caller's mistake)."""
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ValueError(f"expiry must be a positive number of seconds, not {value!r}")
    return value


class MembershipContract:
    """The membership calls of ``BaseChannelBackend``: validated here,
    kept by the underscore methods a backend implements."""

    group_expiry: float

    def group_add(self, group: str, channel: str, expiry: float | None = None) -> None:
        """Add ``channel`` to ``group``, or renew it. ``expiry`` (seconds)
        ends the membership unless renewed; without it, a WebSocket's reply
        channel stays while its socket and process live, and any other
        channel stays GROUP_EXPIRY seconds (the module's docstring)."""
        group, channel = validate_name(group, "group"), validate_name(channel)
        if expiry is not None:
            expiry = check_expiry(expiry)
        process = bound_process(channel)
        if process is None and expiry is None:
            expiry = self.group_expiry
        self._group_add(group, channel, expiry, process)

    def group_discard(self, group: str, channel: str) -> None:
        self._group_discard(validate_name(group, "group"), validate_name(channel))

    def group_channels(self, group: str) -> list[str]:
        """The group's live members: unexpired, and for a WebSocket's
        reply channel bound to its process, that process alive."""
        return self._group_channels(validate_name(group, "group"))

    def discard_from_groups(self, channels: Iterable[str]) -> None:
        """Remove each of ``channels`` (WebSocket reply channels whose
        sockets closed) from every group it is in, and keep it out: a
        ``group_add`` of one of them that comes later (a consumer that ran
        late) adds nothing. For interface servers, in batches."""
        for process, names in bound_by_process(channels).items():
            self._discard_from_groups(process, names)

    # Backends implement these.

    def _group_add(self, group: str, channel: str, expiry: float | None,
                   process: str | None) -> None:
        """``process``: the token ``channel`` is bound to, if it is a
        WebSocket's; ``expiry`` None only then. A backend that does not hold
        that process's heartbeat makes None GROUP_EXPIRY."""
        raise NotImplementedError

    def _group_discard(self, group: str, channel: str) -> None:
        raise NotImplementedError

    def _group_channels(self, group: str) -> list[str]:
        raise NotImplementedError

    def _discard_from_groups(self, process: str, channels: list[str]) -> None:
        """``channels``: reply channels of interface process ``process``."""
        raise NotImplementedError
