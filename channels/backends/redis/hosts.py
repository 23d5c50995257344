"""The HOSTS setting: which Redis servers are the shards, in which order.

The order matters: every process derives a response channel's or a group's
shard from its position in this list, so all processes must list the same
servers in the same order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url

DEFAULT_HOSTS = (("localhost", 6379),)
URL_SCHEMES = ("redis://", "rediss://", "unix://")


@dataclass(frozen=True)
class ShardAddress:
    """Where one shard is: a label for messages and redis-py connection
    arguments (host/port or path, password, db, TLS class)."""

    label: str
    options: dict[str, Any] = field(hash=False, compare=False)


def parse_hosts(alias: str, hosts: object) -> list[ShardAddress]:
    where = f"CHANNEL_BACKENDS[{alias!r}]['HOSTS']"
    if hosts is None:
        hosts = DEFAULT_HOSTS
    if isinstance(hosts, str | bytes) or not isinstance(hosts, Sequence) or not hosts:
        raise ImproperlyConfigured(
            f"{where} must be a non-empty list of (host, port) pairs or "
            f"redis://, rediss:// or unix:// URLs, not {hosts!r}"
        )
    addresses = [_parse_entry(where, index, entry) for index, entry in enumerate(hosts)]
    labels = [address.label for address in addresses]
    for label in labels:
        if labels.count(label) > 1:
            raise ImproperlyConfigured(
                f"{where} lists {label} twice; each shard must be a different server"
            )
    return addresses


def _masked(entry: object) -> object:
    """The entry with any password in it hidden, for error messages."""
    if isinstance(entry, str):
        return re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", entry)
    return entry


def _parse_entry(where: str, index: int, entry: object) -> ShardAddress:
    entry_where = f"{where}[{index}] = {_masked(entry)!r}"
    if isinstance(entry, str):
        if not entry.startswith(URL_SCHEMES):
            raise ImproperlyConfigured(
                f"{entry_where} is not a URL starting with "
                f"{', '.join(URL_SCHEMES)} nor a (host, port) pair"
            )
        try:
            options = parse_url(entry)
        except ValueError as exc:
            raise ImproperlyConfigured(f"{entry_where} is not a valid Redis URL: {exc}")
        if entry.startswith("unix://"):
            if not options.get("path"):
                raise ImproperlyConfigured(f"{entry_where} has no socket path")
            label = f"unix:{options['path']}"
        else:
            if "host" not in options:
                raise ImproperlyConfigured(f"{entry_where} has no host name")
            options.setdefault("port", 6379)
            if not 0 < options["port"] < 65536:
                raise ImproperlyConfigured(f"{entry_where} has port {options['port']}")
            label = f"{options['host']}:{options['port']}"
        if options.get("db"):
            label += f"/{options['db']}"
        return ShardAddress(label, options)
    if (
        isinstance(entry, list | tuple) and len(entry) == 2
        and isinstance(entry[0], str) and entry[0]
        and isinstance(entry[1], int) and not isinstance(entry[1], bool)
        and 0 < entry[1] < 65536
    ):
        host, port = entry
        return ShardAddress(f"{host}:{port}", {"host": host, "port": port})
    raise ImproperlyConfigured(
        f"{entry_where} must be a (host, port) pair with a port from 1 to 65535, "
        f"or a redis://, rediss:// or unix:// URL"
    )
