"""The contract every channel backend keeps, stated and enforced in one place.

A channel is an ordered FIFO queue with expiry and a capacity; each message
is delivered at most once, to exactly one listener. Senders are never
blocked: a full channel raises ``ChannelFull`` at once.

Public methods here validate names and content and encode the content, then
call the underscore methods that a backend implements. A backend therefore
only ever sees valid names and already-encoded ``bytes``, and every backend
rejects bad input the same way, before anything reaches its store.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.core.exceptions import ImproperlyConfigured

from channels.backends import outgoing
from channels.backends.encoding import decode, encode
from channels.backends.heartbeats import (
    DEFAULT_HEARTBEAT_INTERVAL,
    DEFAULT_HEARTBEAT_TTL,
    Heartbeats,
    check_heartbeat_name,
)
from channels.backends.membership import MembershipContract, check_expiry
from channels.backends.presence import PresenceContract
from channels.backends.status import Introspection
from channels.exceptions import ChannelFull
from channels.names import HTTP_REPLY_PREFIX, new_token, validate_name
from channels.registry import ConsumerRegistry

if TYPE_CHECKING:
    from channels.backends.layer_client import LayerClient

# A channel's capacity unless CHANNEL_CAPACITY or the patterns below say
# otherwise.
DEFAULT_CAPACITY = 100
# HTTP response channels, as interface servers name them.
HTTP_REPLY_CHANNELS = f"{HTTP_REPLY_PREFIX}.*"
# Capacities that apply after the project's CHANNEL_CAPACITY patterns. An
# upload's chunks wait on its body channel until the view reads them, and the
# interface servers hold the client back while it is full; a response's
# chunks wait on its reply channel while the server has paused it for a
# client that reads slowly. A few chunks (512 KiB each) keep both as fast,
# and bound what one client can pin.
DEFAULT_CHANNEL_CAPACITY = {"http.request.body.*": 4, HTTP_REPLY_CHANNELS: 4}

def _is_positive(value: object, types: tuple[type, ...] = (int, float)) -> bool:
    return not isinstance(value, bool) and isinstance(value, types) and value > 0


def _positive(alias: str, option: str, value: object, types=(int, float)) -> float:
    """A positive number from CHANNEL_BACKENDS, or an error naming where it was."""
    if not _is_positive(value, types):
        kind = "a positive integer" if types == (int,) else "a positive number"
        raise ImproperlyConfigured(
            f"CHANNEL_BACKENDS[{alias!r}][{option!r}] must be {kind}, not {value!r}"
        )
    return value


class BaseChannelBackend(MembershipContract, PresenceContract, Introspection):
    """Base class of channel backends.

    ``local_only`` backends keep messages inside one process; commands that
    need several processes to share a layer (``runworker``, ``runwsserver``)
    refuse them.
    """

    local_only = False
    # Whether the backend keeps heartbeats (``set_heartbeat`` and the
    # rest); without them nobody can tell whether a worker is running, and
    # the interface server waits for answers as if one were.
    keeps_heartbeats = False
    # Presence metadata (PresenceContract) is checked and encoded as content.
    encode_meta = staticmethod(encode)

    def __init__(
        self,
        alias: str = "default",
        routing: Mapping[str, Any] | str | None = None,
        expiry: float = 60,
        capacity: int = DEFAULT_CAPACITY,
        channel_capacity: Mapping[str, int] | None = None,
        group_expiry: float = 86400,
        heartbeat_interval: float = DEFAULT_HEARTBEAT_INTERVAL,
        heartbeat_ttl: float = DEFAULT_HEARTBEAT_TTL,
    ):
        self.alias = alias
        self.routing = routing
        self.expiry = _positive(alias, "EXPIRY", expiry)
        self.capacity = _positive(alias, "CAPACITY", capacity, (int,))
        self.group_expiry = _positive(alias, "GROUP_EXPIRY", group_expiry)
        self.heartbeat_interval = _positive(alias, "HEARTBEAT_INTERVAL", heartbeat_interval)
        self.heartbeat_ttl = _positive(alias, "HEARTBEAT_TTL", heartbeat_ttl)
        if self.heartbeat_ttl <= self.heartbeat_interval:
            # A record would expire before its next write.
            raise ImproperlyConfigured(
                f"CHANNEL_BACKENDS[{alias!r}]['HEARTBEAT_TTL'] ({heartbeat_ttl}) must be "
                f"longer than HEARTBEAT_INTERVAL ({heartbeat_interval}); twice as long "
                f"lets one heartbeat be late")
        if not isinstance(channel_capacity, Mapping | None):
            raise ImproperlyConfigured(
                f"CHANNEL_BACKENDS[{alias!r}]['CHANNEL_CAPACITY'] must be a dict of "
                f"glob pattern to capacity, not {type(channel_capacity).__name__}"
            )
        patterns = dict(channel_capacity or {})
        for pattern, value in DEFAULT_CHANNEL_CAPACITY.items():
            patterns.setdefault(pattern, value)  # after the project's own
        self._capacity_patterns = []
        for pattern, value in patterns.items():
            if not isinstance(pattern, str):
                raise ImproperlyConfigured(
                    f"CHANNEL_BACKENDS[{alias!r}]['CHANNEL_CAPACITY'] keys must be "
                    f"glob patterns (str), not {pattern!r}"
                )
            self._capacity_patterns.append(
                (re.compile(fnmatch.translate(pattern)).match,
                 _positive(alias, f"CHANNEL_CAPACITY[{pattern!r}]", value, (int,)))
            )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.alias!r}>"

    @cached_property
    def registry(self) -> ConsumerRegistry:
        from channels.registry import load_routing

        return ConsumerRegistry(load_routing(self.routing, self.alias), self.alias)

    def capacity_for(self, channel: str) -> int:
        """The capacity of ``channel``: the first matching CHANNEL_CAPACITY
        glob pattern, then DEFAULT_CHANNEL_CAPACITY's, else CAPACITY."""
        for match, value in self._capacity_patterns:
            if match(channel):
                return value
        return self.capacity

    # Public API: validates, then delegates.

    def send(self, channel: str, content: dict[str, Any], *, immediately: bool = False) -> None:
        """Queue ``content`` on ``channel``; raise ChannelFull if it is full.

        In a worker's consumer the message is held for a moment and goes
        with the others of the worker's batch (``channels.backends.
        outgoing``), unless ``immediately``: then what is held goes first,
        and this one at once.
        """
        self._send_or_hold(False, validate_name(channel), encode(content), immediately)

    def requeue(self, channel: str, content: dict[str, Any]) -> None:
        """Put a message back at the head of its channel, whatever the
        capacity, so that a retried message keeps its place in line."""
        self._requeue(validate_name(channel), encode(content))

    def receive_many(
        self, channels: Iterable[str]
    ) -> tuple[str, dict[str, Any]] | tuple[None, None]:
        """Take the next message from any of ``channels`` without blocking
        long; ``(None, None)`` if there is none.

        A name from ``channels.names.process_wildcard(prefix)`` stands for
        every name that ``new_name(prefix)`` made in this process.
        """
        channel, data = self._receive_many(self._names(channels))
        return (None, None) if channel is None else (channel, decode(data))

    def receive_many_blocking(
        self, channels: Iterable[str], timeout: float | None = None
    ) -> tuple[str, dict[str, Any]] | tuple[None, None]:
        """Like receive_many, but wait up to ``timeout`` seconds (None: no
        limit) for a message."""
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or at least 0")
        channel, data = self._receive_many_blocking(self._names(channels), timeout)
        return (None, None) if channel is None else (channel, decode(data))

    def send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> list[str]:
        """Queue several messages at once; return the channels that were full
        (their messages were not sent).

        For interface servers, which collect what many connections said
        during one turn of their event loop: a networked backend sends the
        whole batch in one round trip per shard instead of one per message.
        Every message is validated before any is sent.
        """
        encoded = [(validate_name(c), encode(m)) for c, m in messages]
        held = outgoing.held()
        if held is not None:  # what a consumer sent before goes first
            return held.then(lambda: self.send_many_encoded(encoded))
        return self.send_many_encoded(encoded)

    def receive_batch(
        self, channels: Iterable[str], limit: int = 100, timeout: float | None = None
    ) -> list[tuple[str, dict[str, Any]]]:
        """Wait up to ``timeout`` seconds for a message on any of ``channels``,
        then take up to ``limit`` that are waiting, in order per channel.

        For interface servers reading their response channels, where a
        broadcast can put hundreds of messages in line at once, and for
        workers taking a few that wait in one round trip (see the worker's
        PREFETCH).
        """
        batch = self.receive_batch_encoded(channels, limit, timeout)
        return [(channel, decode(data)) for channel, data in batch]

    # The same calls on encoded messages, for layer clients
    # (channels.backends.layer_client), whose messages were checked and
    # encoded on their way in and are decoded where they are used.

    def send_many_encoded(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """``send_many`` of messages that ``encode`` made, to valid names."""
        return self._send_many(messages)

    def receive_batch_encoded(
        self, channels: Iterable[str], limit: int = 100, timeout: float | None = None
    ) -> list[tuple[str, bytes]]:
        """``receive_batch``, leaving the messages encoded."""
        return self._receive_batch(*self._batch_args(channels, limit, timeout))

    def receive_batch_aged(
        self, channels: Iterable[str], limit: int = 100, timeout: float | None = None
    ) -> list[tuple[str, dict[str, Any], float | None]]:
        """``receive_batch``, with each message's age: the seconds since it
        was sent, the queueing delay its client feels (None where the
        backend cannot tell). For the worker's message-age metric."""
        batch = self._receive_batch_aged(*self._batch_args(channels, limit, timeout))
        return [(channel, decode(data), age) for channel, data, age in batch]

    def _batch_args(self, channels: Iterable[str], limit: int,
                    timeout: float | None) -> tuple[list[str], int, float | None]:
        if not _is_positive(limit, (int,)):
            raise ValueError(f"limit must be a positive integer, not {limit!r}")
        if timeout is not None and timeout < 0:
            raise ValueError("timeout must be None or at least 0")
        return self._names(channels), limit, timeout

    def requeue_encoded(self, channel: str, data: bytes) -> None:
        """``requeue`` of a message as ``receive_batch_encoded`` gave it."""
        self._requeue(validate_name(channel), data)

    def send_group(self, group: str, content: dict[str, Any], *,
                   immediately: bool = False) -> None:
        """Send to every live member. Full members are skipped silently: one
        slow client must not stop a broadcast, so this never raises
        ChannelFull. Held in a worker's consumer as ``send`` is."""
        self._send_or_hold(True, validate_name(group, "group"), encode(content), immediately)

    def _send_or_hold(self, group: bool, name: str, data: bytes, immediately: bool) -> None:
        send = self._send_group if group else self._send
        held = outgoing.held()
        if held is None:
            send(name, data)
        elif immediately:
            held.then(lambda: send(name, data))
        else:
            held.hold(self, group, name, data)

    def send_group_encoded(self, group: str, data: bytes) -> None:
        """``send_group`` of a message that ``encode`` made, to a valid
        name, at once (held sends go so)."""
        self._send_group(group, data)

    def pause_channel(self, channel: str) -> None:
        """Refuse sends to ``channel`` with ChannelFull, as if it were full,
        until ``resume_channel``; what it holds can still be received.

        For an interface server whose client reads a response slower than
        a worker sends it: the worker's sends then wait (the HTTP handler
        retries a full reply channel) instead of the server holding the
        difference in memory. ``channel`` is a response channel made by
        ``new_name``, read through its process wildcard."""
        self._set_paused(validate_name(channel), True)

    def resume_channel(self, channel: str) -> None:
        """Undo ``pause_channel``."""
        self._set_paused(validate_name(channel), False)

    def lock_channel(self, channel: str, expiry: float = 60) -> str | None:
        """Take the lock named ``channel`` for ``expiry`` seconds.

        Returns an owner token, or None if someone else holds it. The expiry
        means a crashed holder cannot wedge the channel forever.
        """
        return self._lock_channel(validate_name(channel), check_expiry(expiry))

    def unlock_channel(self, channel: str, token: str) -> bool:
        """Release a lock; only the holder's token releases it. Returns
        whether it was released."""
        return self._unlock_channel(validate_name(channel), token)

    # Heartbeats: which processes are alive (docs/heartbeats.rst).

    def set_heartbeat(self, kind: str, id: str, record: Mapping[str, Any],
                      ttl: float | None = None) -> None:
        """Write the heartbeat record of process ``id`` of ``kind``
        (``"worker"``, ``"interface"``), replacing its last one, to last
        ``ttl`` seconds (default HEARTBEAT_TTL). A networked backend writes
        it where every reader finds it while any of its servers is up."""
        self.set_heartbeat_encoded(kind, id, encode(record), ttl)

    def set_heartbeat_encoded(self, kind: str, id: str, data: bytes,
                              ttl: float | None = None) -> None:
        """``set_heartbeat`` of a record that ``encode`` made."""
        check_heartbeat_name(kind, id)
        self._set_heartbeat(kind, id, data, self.heartbeat_ttl if ttl is None
                            else check_expiry(ttl))

    def heartbeats(self, kind: str) -> Heartbeats:
        """The live records of ``kind``. Raises ChannelBackendUnavailable
        only if none of the store can be read."""
        check_heartbeat_name(kind, "x")
        return self.heartbeats_from(*self._heartbeats(kind))

    def heartbeats_from(self, entries: Iterable[tuple[bytes, float]],
                        covered: float) -> Heartbeats:
        """What ``_heartbeats`` returns, decoded (for layer clients too)."""
        records = []
        for data, expires_in in entries:
            try:
                record = decode(data)
            except Exception:
                continue  # not written by a heartbeat: nobody's
            if isinstance(record, dict):
                record["expires_in"] = expires_in
                records.append(record)
        return Heartbeats(records, covered, covered >= self.heartbeat_ttl)

    def clear_heartbeat(self, kind: str, id: str) -> None:
        """Delete a record at once, rather than let it expire."""
        check_heartbeat_name(kind, id)
        self._clear_heartbeat(kind, id)

    def flush(self) -> None:
        """Delete every message, group, lock, heartbeat and presence here."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections; the backend reconnects if used again."""

    def reply_token(self, lost: str) -> str | None:
        """A token once the inbox of ``lost`` failed (Redis: on a live shard, or None)."""
        return new_token()

    def layer_client(self, reactor: Any) -> LayerClient:
        """For an interface server: this backend's calls without blocking
        the Twisted ``reactor`` (see ``channels.backends.layer_client``).
        This default makes them in threads; a backend that can speak to its
        store on the reactor returns its own."""
        from channels.backends.threaded_client import ThreadedLayerClient

        return ThreadedLayerClient(self, reactor)

    @staticmethod
    def _names(channels: Iterable[str]) -> list[str]:
        if isinstance(channels, str):
            raise TypeError("channels must be a list of names, not a str")
        return [validate_name(name) for name in channels]

    # Backends implement these.

    def _send(self, channel: str, data: bytes) -> None:
        raise NotImplementedError

    def _requeue(self, channel: str, data: bytes) -> None:
        raise NotImplementedError

    def _receive_many(self, channels: list[str]) -> tuple[str | None, bytes | None]:
        raise NotImplementedError

    def _receive_many_blocking(
        self, channels: list[str], timeout: float | None
    ) -> tuple[str | None, bytes | None]:
        raise NotImplementedError

    def _send_many(self, messages: list[tuple[str, bytes]]) -> list[str]:
        """One _send per message; networked backends override this to batch."""
        full = []
        for channel, data in messages:
            try:
                self._send(channel, data)
            except ChannelFull:
                full.append(channel)
        return full

    def _receive_batch(
        self, channels: list[str], limit: int, timeout: float | None
    ) -> list[tuple[str, bytes]]:
        """One blocking receive, then non-blocking ones up to ``limit``;
        networked backends override this to take a batch in one round trip."""
        channel, data = self._receive_many_blocking(channels, timeout)
        batch = []
        while channel is not None:
            batch.append((channel, data))
            if len(batch) >= limit:
                break
            channel, data = self._receive_many(channels)
        return batch

    def _receive_batch_aged(
        self, channels: list[str], limit: int, timeout: float | None
    ) -> list[tuple[str, bytes, float | None]]:
        """``_receive_batch`` with ages, where a backend knows them."""
        return [(channel, data, None) for channel, data in
                self._receive_batch(channels, limit, timeout)]

    def _send_group(self, group: str, data: bytes) -> None:
        raise NotImplementedError

    def _set_paused(self, channel: str, paused: bool) -> None:
        raise NotImplementedError

    def _lock_channel(self, channel: str, expiry: float) -> str | None:
        raise NotImplementedError

    def _unlock_channel(self, channel: str, token: str) -> bool:
        raise NotImplementedError

    # Backends that keep heartbeats (keeps_heartbeats) implement these.

    def _set_heartbeat(self, kind: str, id: str, data: bytes, ttl: float) -> None:
        raise NotImplementedError

    def _heartbeats(self, kind: str) -> tuple[list[tuple[bytes, float]], float]:
        """``([(record, seconds left)], seconds covered)``: see
        ``channels.backends.heartbeats.Heartbeats``."""
        raise NotImplementedError

    def _clear_heartbeat(self, kind: str, id: str) -> None:
        raise NotImplementedError
