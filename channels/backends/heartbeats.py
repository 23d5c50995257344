"""The heartbeat part of the backend contract (``BaseChannelBackend``'s
``set_heartbeat``, ``heartbeats`` and ``clear_heartbeat``): its defaults,
the names it takes, and what a read gives. What records hold and who
writes them: ``channels.heartbeats``."""

from __future__ import annotations

import re
from typing import Any, NamedTuple

# A live process rewrites its record every HEARTBEAT_INTERVAL seconds, and
# a record lasts HEARTBEAT_TTL seconds after its last write: a process that
# dies is known to be gone within three heartbeats, while one that is two
# heartbeats late is not taken for dead.
DEFAULT_HEARTBEAT_INTERVAL = 5.0
DEFAULT_HEARTBEAT_TTL = 15.0

# A kind and an id are part of a key name on Redis.
_KIND = re.compile(r"[a-z][a-z_]{0,31}")
_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


def check_heartbeat_name(kind: str, id: str) -> None:
    """Raise ValueError unless ``kind`` and ``id`` can name a heartbeat."""
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise ValueError(f"A heartbeat kind is a short lower-case word, not {kind!r}")
    if not isinstance(id, str) or not _ID.fullmatch(id):
        raise ValueError(f"A heartbeat id is up to 64 letters, digits, '_', '.' or '-', "
                         f"not {id!r}")


class Heartbeats(NamedTuple):
    """The live heartbeat records of one kind of process, as a backend
    holds them.

    ``records`` are the processes' dicts, each with ``expires_in`` added
    (seconds its record has left, by the store's clock). ``covered`` is
    how long the store has been collecting heartbeats (a Redis server that
    restarted a second ago holds only the records written since), and
    ``complete`` says whether that is a whole TTL: only then is a process
    missing from ``records`` known to be gone."""

    records: list[dict[str, Any]]
    covered: float
    complete: bool
