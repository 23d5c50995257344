"""Channel and group naming rules, and the shape of generated names.

Generated names carry a per-process token so a backend can tell which names
belong to one process (the Redis backend gives each interface-server process
a single inbox for all of its response channels) without any registry.
"""

from __future__ import annotations

import os
import re
import secrets
import threading
from functools import lru_cache

from channels import process
from channels.exceptions import InvalidChannelName

MAX_NAME_LENGTH = 199  # "under 200 characters"
_NAME_RE = re.compile(r"!?[A-Za-z0-9_.\-]+")  # length checked separately

# A name from new_name() ends in ".<process token>-<client token>": 64 bits
# naming the process and 128 random bits naming the client.
_GENERATED_RE = re.compile(r"\.([0-9a-f]{16})-[0-9a-f]{32}\Z")
_WILDCARD_RE = re.compile(r"\.([0-9a-f]{16})-\Z")

# What interface servers name their response channels and request body
# channels with, by the message standards (docs/message-standards.rst);
# new_name() adds the rest.
HTTP_REPLY_PREFIX = "!http.response"
WEBSOCKET_REPLY_PREFIX = "!websocket.send"
HTTP_BODY_PREFIX = "http.request.body"

_process = (0, "")
_process_lock = threading.Lock()


def validate_name(name: object, kind: str = "channel") -> str:
    """Return ``name`` if it is a valid channel/group name, else raise."""
    if not isinstance(name, str):
        raise InvalidChannelName(
            f"{kind} name must be a str, not {type(name).__name__}: {name!r}"
        )
    if len(name) > MAX_NAME_LENGTH or not _well_formed(name):
        raise InvalidChannelName(
            f"Invalid {kind} name {name[:250]!r}: use ASCII letters, digits, "
            f"'-', '_' and '.', an optional leading '!', and fewer than "
            f"{MAX_NAME_LENGTH + 1} characters"
        )
    return name


@lru_cache(maxsize=8192)
def _well_formed(name: str) -> bool:
    # Cached: the same names come again and again (a socket's reply channel
    # with each of its messages, checked on receipt and again on send), and
    # matching a 70-character generated name costs more than looking it up.
    return _NAME_RE.fullmatch(name) is not None


def process_token() -> str:
    """The random token of this process, renewed after a fork."""
    global _process
    pid = process.pid
    current = _process
    if current[0] != pid:
        # Under a lock: threads that raced here after a fork (the first
        # requests of a threaded gunicorn worker) each made a token, and
        # names with the losing one went to an inbox nobody read.
        with _process_lock:
            if _process[0] != pid:
                _process = (pid, new_token())
            current = _process
    return current[1]


def new_token() -> str:
    """A fresh process token: a process that cannot reach the inbox of its
    own any more names new reply channels with another
    (``channels.interfaces.layer``)."""
    return secrets.token_hex(8)


def _reset_after_fork() -> None:
    # A lock held by another thread at the fork stays held in the child.
    global _process_lock
    _process_lock = threading.Lock()


os.register_at_fork(after_in_child=_reset_after_fork)


def new_name(prefix: str, token: str | None = None) -> str:
    """A unique, unguessable channel name starting with ``prefix``, with
    ``token`` as its process token (this process's unless given)."""
    return validate_name(f"{process_wildcard(prefix, token)}{secrets.token_hex(16)}")


def process_wildcard(prefix: str, token: str | None = None) -> str:
    """A name that, given to ``receive_many``, matches every name that
    ``new_name(prefix, token)`` makes in this process.

    It lets an interface server wait on all of its connections' response
    channels with a call whose cost does not grow with their number.
    """
    return validate_name(f"{prefix}.{token or process_token()}-")


def is_wildcard(name: str) -> bool:
    return _WILDCARD_RE.search(name) is not None


def owner_process(name: str) -> str | None:
    """The process token of a generated name or wildcard, else None."""
    match = _GENERATED_RE.search(name) or _WILDCARD_RE.search(name)
    return match.group(1) if match else None


def is_response_channel(name: str) -> bool:
    """Response channels have exactly one reader: one interface server."""
    return name.startswith("!")


def is_normal_channel(name: str) -> bool:
    """A channel any worker may read (``http.request``, ``chat.log``), as
    opposed to a response channel or a name that ``new_name`` made for one
    reader (an upload's body channel): the ones whose depth operators watch."""
    return not name.startswith("!") and owner_process(name) is None
