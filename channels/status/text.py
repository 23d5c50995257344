"""A report (``channels.status.report``) as plain text for a terminal:
what ``manage.py channels_status`` prints without ``--json``."""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from typing import Any


def table(header: Sequence[str], rows: list[Sequence[Any]], indent: str = "  ") -> list[str]:
    """Columns as wide as their widest cell; numbers to the right."""
    cells = [[str(cell) for cell in header], *[["-" if c is None else str(c) for c in row]
                                               for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [all(isinstance(row[i], int | float) or row[i] is None for row in rows)
               for i in range(len(header))]
    lines = []
    for row in cells:
        parts = [cell.rjust(width) if right else cell.ljust(width)
                 for cell, width, right in zip(row, widths, numeric, strict=True)]
        lines.append((indent + "  ".join(parts)).rstrip())
    return lines


def size(value: int | None) -> str | None:
    if value is None:
        return None
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return None  # unreachable


def milliseconds(seconds: float | None) -> str | None:
    return None if seconds is None else f"{seconds * 1000:.1f} ms"


def ago(seconds: float | None) -> str | None:
    return None if seconds is None else f"{max(seconds, 0):.1f} s ago"


def render(report: dict[str, Any]) -> str:
    when = datetime.datetime.fromtimestamp(report["time"], datetime.UTC)
    lines = [f"Channel backend {report['alias']!r} ({report['backend']}) at "
             f"{when:%Y-%m-%d %H:%M:%S} UTC", ""]
    shards = report["shards"]
    lines.append(f"Shards ({sum(shard['up'] for shard in shards)} of {len(shards)} up)")
    lines += table(("#", "address", "state", "memory", "round trip", "groups", "replies waiting"),
                   [(index, shard["address"], "up" if shard["up"] else "DOWN",
                     size(shard["used_memory"]), milliseconds(shard["round_trip"]),
                     shard["groups"], shard["replies_waiting"])
                    for index, shard in enumerate(shards)])
    lines += [f"  #{index}: {shard['error']}" for index, shard in enumerate(shards)
              if shard["error"]]
    lines += ["", "Channels (messages waiting; capacity is per shard)"]
    per_shard = [f"#{index}" for index in range(len(shards))] if len(shards) > 1 else []
    lines += table(("channel", "waiting", *per_shard, "capacity"),
                   [(channel["name"], channel["total"],
                     *(channel["depth"] if per_shard else ()), channel["capacity"])
                    for channel in report["channels"]]) if report["channels"] else ["  (none)"]
    lines += ["", f"Groups: {'-' if report['groups'] is None else report['groups']}", ""]
    workers = report["workers"]
    lines.append(f"Workers ({len(workers)} running)")
    lines += table(("id", "host", "pid", "threads", "handled", "errors", "mean", "slowest",
                    "last heartbeat", "channels"),
                   [(worker["id"], worker["host"], worker["pid"], worker["threads"],
                     worker["handled"], worker["errors"], mean_duration(worker),
                     milliseconds(worker["slowest"]), ago(worker["age"]),
                     ", ".join(worker["channels"] or ()))
                    for worker in workers]) if workers else ["  (none)"]
    servers = report["interface_servers"]
    lines += ["", f"Interface servers ({len(servers)} running)"]
    lines += table(("id", "host", "pid", "http", "websocket", "last heartbeat"),
                   [(server["id"], server["host"], server["pid"],
                     (server["connections"] or {}).get("http"),
                     (server["connections"] or {}).get("websocket"), ago(server["age"]))
                    for server in servers]) if servers else ["  (none)"]
    for note in report["notes"]:
        lines += ["", f"Note: {note}"]
    return "\n".join(lines) + "\n"


def mean_duration(worker: dict[str, Any]) -> str | None:
    """A worker's mean consumer time since it started."""
    busy, handled = worker.get("busy"), worker.get("handled")
    if not isinstance(busy, int | float) or not handled:
        return None
    return milliseconds(busy / handled)
