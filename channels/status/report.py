"""One report of a channel backend: the store's figures
(``BaseChannelBackend.status``) and the live workers and interface
servers (their heartbeats, ``channels.heartbeats.live``), as one
JSON-ready dict. ``manage.py channels_status`` prints it and the status
page polls it; docs/operations.rst explains each field."""

from __future__ import annotations

import time
from typing import Any

from channels.backends import channel_backends
from channels.backends.base import BaseChannelBackend
from channels.backends.status import BackendStatus
from channels.exceptions import ChannelBackendUnavailable
from channels.heartbeats import INTERFACE, WORKER, live
from channels.names import is_normal_channel

# Said when a process-local backend shows no process: the one asked about
# runs in another process (runserver), out of this one's sight.
LOCAL_ONLY = ("The channel backend {alias!r} ({backend}) keeps its messages and heartbeats "
              "inside the process that uses it, such as runserver; this process cannot see "
              "another's. Open the status page (channels.status.urls) on the site that "
              "runserver serves, or use a networked backend such as "
              "channels.backends.redis.RedisChannelBackend.")

# The fields of the records (docs/heartbeats.rst) that a report shows.
WORKER_FIELDS = ("id", "host", "pid", "channels", "threads", "handled", "errors", "skipped",
                 "busy", "slowest", "started", "beat")
INTERFACE_FIELDS = ("id", "host", "pid", "connections", "counts", "started", "beat")


def summary(record: dict[str, Any], fields: tuple[str, ...], now: float) -> dict[str, Any]:
    """The fields of a heartbeat record a report shows, with ``age``:
    seconds since its last heartbeat, by this machine's clock."""
    shown = {field: record.get(field) for field in fields}
    beat = record.get("beat")
    shown["age"] = round(now - beat, 3) if isinstance(beat, int | float) else None
    return shown


def collect(backend: BaseChannelBackend | str = "default") -> dict[str, Any]:
    """The report of ``backend`` (an alias or a backend). A shard that is
    down is reported down, heartbeats that cannot be read are a note;
    a backend that cannot be built raises ImproperlyConfigured."""
    if isinstance(backend, str):
        backend = channel_backends[backend]
    routed = [name for name in backend.registry.all_channel_names() if is_normal_channel(name)]
    now = time.time()
    notes: list[str] = []
    try:
        status = backend.status(routed)
    except NotImplementedError:
        # A third-party backend without the introspection part of the
        # contract: its processes can still be listed.
        status = BackendStatus.of(backend, [], [])
        notes.append(f"{status.backend} does not implement status(): its shards and "
                     f"channels cannot be shown.")
    report: dict[str, Any] = {"time": now, **status.as_dict(),
                              "workers": [], "interface_servers": [], "notes": notes}
    if backend.keeps_heartbeats:
        try:
            workers, servers = live(WORKER, backend), live(INTERFACE, backend)
        except ChannelBackendUnavailable as exc:
            notes.append(f"The heartbeats could not be read, so no process is listed: {exc}")
        else:
            report["workers"] = [summary(record, WORKER_FIELDS, now) for record in workers]
            report["interface_servers"] = [summary(record, INTERFACE_FIELDS, now)
                                           for record in servers]
    else:
        notes.append(f"{report['backend']} keeps no heartbeats: the processes that use it "
                     f"cannot be listed.")
    if backend.local_only and not report["workers"] and not report["interface_servers"]:
        notes.append(LOCAL_ONLY.format(alias=backend.alias, backend=report["backend"]))
    return report
