"""Which workers and interface servers are alive, and what they hold.

Every ``runworker`` process and every interface server process writes a
*heartbeat record* to the channel backend every HEARTBEAT_INTERVAL seconds;
a record lasts HEARTBEAT_TTL seconds after its last write, so the record of
a process that died is gone within TTL. The backend keeps them
(``BaseChannelBackend.set_heartbeat`` and ``heartbeats``; the Redis
backend on every shard). The writers are ``channels.worker.heartbeat`` and
``channels.interfaces.liveness``; this module holds what both write, and
``live()``, which tools read. Records and their fields: docs/heartbeats.rst.

A process's id is the process token it started with, the one in the
names of the reply channels it makes (``channels.names.owner_process``).
An interface process whose inbox could not be read names new ones with
another token (docs/scaling.rst), which its record gives as
``reply_token``; its id stays, so that tools see the process once.
"""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from channels import names
from channels.backends.base import BaseChannelBackend

WORKER = "worker"
INTERFACE = "interface"

# A record's state: a process that stops cleanly writes a last record
# saying so, which readers tell from one that died.
RUNNING = "running"
STOPPED = "stopped"


class ProcessRecord:
    """The fields that every record of one process of ``kind`` has, and
    the numbering of its writes."""

    def __init__(self, kind: str, backend: BaseChannelBackend):
        self.kind = kind
        self.backend = backend
        self.id = names.process_token()
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started = time.time()
        self.seq = 0

    def beat(self, state: str = RUNNING, **fields: Any) -> dict[str, Any]:
        """The next record: the common fields, then ``fields``."""
        self.seq += 1
        return {
            "id": self.id,
            "kind": self.kind,
            "host": self.host,
            "pid": self.pid,
            "started": self.started,
            "beat": time.time(),
            "seq": self.seq,
            "state": state,
            "interval": self.backend.heartbeat_interval,
            "ttl": self.backend.heartbeat_ttl,
            **fields,
        }


def live(kind: str, backend: BaseChannelBackend | str = "default") -> list[dict[str, Any]]:
    """The records of the running processes of ``kind`` (``WORKER`` or
    ``INTERFACE``) on ``backend`` (an alias or a backend), for tools:
    ``manage.py channels_status``, a health check. Each record has
    ``expires_in`` (seconds left) added. Raises ChannelBackendUnavailable
    if the backend cannot be read, and NotImplementedError for a backend
    that keeps no heartbeats (``keeps_heartbeats``)."""
    if isinstance(backend, str):
        from channels.backends import channel_backends

        backend = channel_backends[backend]
    if not backend.keeps_heartbeats:
        raise NotImplementedError(f"{type(backend).__name__} keeps no heartbeats")
    records = backend.heartbeats(kind).records
    return sorted((record for record in records if record.get("state") == RUNNING),
                  key=lambda record: (record.get("host", ""), record.get("pid", 0)))


def consumers(records: list[dict[str, Any]]) -> set[str]:
    """The channels that the running workers among ``records`` listen on."""
    return {channel for record in records if record.get("state") == RUNNING
            for channel in record.get("channels", ())}
