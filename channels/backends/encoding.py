"""How message content travels: checked, then packed with msgpack.

Every backend stores the bytes made here, so what a consumer may send (JSON's
types, str keys, bytes) and how large it may be are decided in one place.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import msgpack

from channels.exceptions import InvalidMessage, MessageTooLarge

# Encoded size limit of one message. Larger payloads (HTTP bodies) travel as
# ordered chunks; see docs/message-standards.rst.
MAX_MESSAGE_SIZE = 1024 * 1024

_CONTAINERS = (dict, list, tuple)


def _check_keys(content: dict) -> None:
    """JSON objects only have str keys; msgpack alone would accept others."""
    stack: list[Any] = [content]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise InvalidMessage(
                        f"Message keys must be str, not {type(key).__name__} ({key!r})"
                    )
                if isinstance(item, _CONTAINERS):
                    stack.append(item)
        else:
            stack.extend(item for item in value if isinstance(item, _CONTAINERS))


def _unserialisable(value: object) -> object:
    raise TypeError(
        f"{type(value).__name__} is not JSON-compatible; use dicts, lists, "
        f"str, bytes, int, float, bool or None"
    )


class _Packer(threading.local):
    """One msgpack packer per thread (a packer is not thread-safe): making
    one per message, as packb() does, costs twice the packing itself."""

    def __init__(self) -> None:
        self.pack = msgpack.Packer(use_bin_type=True, default=_unserialisable).pack


_packer = _Packer()


def encode(content: Mapping[str, Any], *, check_keys: bool = True) -> bytes:
    """Check message content and encode it; raise InvalidMessage if it can't travel.

    ``check_keys=False`` is for content that ``channels.messages`` built,
    whose keys are str by construction: walking an ``http.request``'s
    header lists costs about as much as packing it.
    """
    if not isinstance(content, dict):
        raise InvalidMessage(
            f"Message content must be a dict, not {type(content).__name__}"
        )
    if check_keys:
        _check_keys(content)
    try:
        data = _packer.pack(content)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidMessage(f"Message content cannot be sent: {exc}") from None
    if len(data) > MAX_MESSAGE_SIZE:
        raise MessageTooLarge(
            f"Message is {len(data)} bytes encoded; the limit is "
            f"{MAX_MESSAGE_SIZE}. Split large payloads into chunks."
        )
    return data


def decode(data: bytes) -> dict[str, Any]:
    return msgpack.unpackb(data, raw=False)
