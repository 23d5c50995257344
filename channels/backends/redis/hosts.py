"""The HOSTS setting: which Redis servers are the shards, in which order.

The order matters: every process derives a response channel's or a group's
shard from its position in this list, so all processes must list the same
servers in the same order.

A shard may be a master that Redis Sentinel watches and replaces when it
fails: an entry names the sentinels and the master's name, and the clients
ask the sentinels where the master is (``sentinel.py``,
``reactor_sentinel.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from redis.connection import parse_url

DEFAULT_HOSTS = (("localhost", 6379),)
SENTINEL_SCHEME = "sentinel://"
URL_SCHEMES = ("redis://", "rediss://", "unix://", SENTINEL_SCHEME)
SENTINEL_PORT = 26379


def _db(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str) or int(value) < 0:
        raise ValueError
    return int(value)


def _seconds(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError
    seconds = float(value)
    if not 0 < seconds < float("inf"):
        raise ValueError
    return seconds


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError
    return value


# The options of a Sentinel-managed shard, as redis-py's ``Sentinel`` takes
# them: for connections to the master (its ``connection_kwargs``), and for
# connections to the sentinels (its ``sentinel_kwargs``). Both clients honour
# each of them.
MASTER_OPTIONS: dict[str, Callable[[object], Any]] = {
    "password": _text, "username": _text, "db": _db,
    "socket_timeout": _seconds, "socket_connect_timeout": _seconds,
}
SENTINEL_OPTIONS: dict[str, Callable[[object], Any]] = {
    "password": _text, "username": _text,
    "socket_timeout": _seconds, "socket_connect_timeout": _seconds,
}


@dataclass(frozen=True)
class SentinelService:
    """A master that sentinels watch: where they are, the name they know it
    by, and redis-py ``sentinel_kwargs`` for connections to them."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    options: dict[str, Any] = field(hash=False, compare=False)


@dataclass(frozen=True)
class ShardAddress:
    """Where one shard is: a label for messages and redis-py connection
    arguments (host/port or path, password, db, TLS class); for a
    Sentinel-managed shard, no host: the sentinels to ask for it."""

    label: str
    options: dict[str, Any] = field(hash=False, compare=False)
    sentinel: SentinelService | None = field(default=None, hash=False, compare=False)


def parse_hosts(alias: str, hosts: object) -> list[ShardAddress]:
    where = f"CHANNEL_BACKENDS[{alias!r}]['HOSTS']"
    if hosts is None:
        hosts = DEFAULT_HOSTS
    if isinstance(hosts, str | bytes) or not isinstance(hosts, Sequence) or not hosts:
        raise ImproperlyConfigured(
            f"{where} must be a non-empty list of (host, port) pairs, "
            f"redis://, rediss://, unix:// or sentinel:// URLs or sentinel dicts, "
            f"not {_masked(hosts)!r}"
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
        entry = re.sub(r"(//[^/@]*?:)[^/@]*@", r"\1***@", entry)
        return re.sub(r"((?:^|[?&])\w*password=)[^&#]*", r"\1***", entry)
    if isinstance(entry, Mapping):
        return {key: "***" if "password" in str(key) else _masked(value)
                for key, value in entry.items()}
    return entry


def _parse_entry(where: str, index: int, entry: object) -> ShardAddress:
    entry_where = f"{where}[{index}] = {_masked(entry)!r}"
    if isinstance(entry, str) and entry.startswith(SENTINEL_SCHEME):
        return _parse_sentinel_url(entry_where, entry)
    if isinstance(entry, Mapping):
        return _parse_sentinel_dict(entry_where, entry)
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
        f"a redis://, rediss://, unix:// or sentinel:// URL, or a sentinel dict"
    )


def _parse_sentinel_url(entry_where: str, entry: str) -> ShardAddress:
    """``sentinel://[[user]:password@]host[:port][,host[:port]...]/name[/db]``
    with options in the query string (``sentinel_password`` and
    ``sentinel_username`` for the sentinels); the password before the hosts
    is the master's, as in a ``redis://`` URL."""
    try:
        parts = urlsplit(entry)
        query = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError as exc:
        raise ImproperlyConfigured(f"{entry_where} is not a valid sentinel URL: {exc}")
    hosts = parts.netloc.rpartition("@")[2]
    if not hosts:
        raise ImproperlyConfigured(f"{entry_where} names no sentinel")
    sentinels = [_host_and_port(entry_where, host) for host in hosts.split(",")]
    path = [unquote(part) for part in parts.path.split("/")[1:]]
    if not path or not path[0] or len(path) > 2:
        raise ImproperlyConfigured(
            f"{entry_where} names no master: sentinel://host:port[,host:port...]/name[/db]")
    master: dict[str, object] = {}
    sentinel: dict[str, object] = {}
    for name, value in query:
        if name.startswith("sentinel_"):
            sentinel[name.removeprefix("sentinel_")] = value
        else:
            master[name] = value
    if len(path) == 2:
        master.setdefault("db", path[1])
    if parts.username:
        master["username"] = unquote(parts.username)
    if parts.password:
        master["password"] = unquote(parts.password)
    return _sentinel_shard(entry_where, sentinels, path[0], master, sentinel)


def _host_and_port(entry_where: str, text: str) -> tuple[str, int]:
    match = re.fullmatch(r"(\[[^\]]+\]|[^:\[\]]+)(?::(\d*))?", text)
    port = int(match.group(2)) if match and match.group(2) else SENTINEL_PORT
    if match is None or not 0 < port < 65536:
        raise ImproperlyConfigured(
            f"{entry_where} has a bad sentinel address {text!r}: host[:port], "
            f"with a port from 1 to 65535")
    return match.group(1).strip("[]"), port


def _parse_sentinel_dict(entry_where: str, entry: Mapping) -> ShardAddress:
    """``{"sentinels": [(host, port), ...], "service_name": name,
    "sentinel_kwargs": {...}, **connection_kwargs}``: the arguments of
    redis-py's ``Sentinel(sentinels, sentinel_kwargs=...,
    **connection_kwargs).master_for(service_name)``."""
    master = dict(entry)
    sentinels = master.pop("sentinels", None)
    service_name = master.pop("service_name", None)
    sentinel = master.pop("sentinel_kwargs", None) or {}
    if (isinstance(sentinels, str) or not isinstance(sentinels, Sequence) or not sentinels
            or not all(isinstance(item, list | tuple) and len(item) == 2
                       and isinstance(item[0], str) and item[0]
                       and isinstance(item[1], int) and not isinstance(item[1], bool)
                       and 0 < item[1] < 65536 for item in sentinels)):
        raise ImproperlyConfigured(
            f"{entry_where} must have 'sentinels': a non-empty list of (host, port) pairs")
    if not isinstance(service_name, str) or not service_name:
        raise ImproperlyConfigured(
            f"{entry_where} must have 'service_name': the master's name for the sentinels")
    if not isinstance(sentinel, Mapping):
        raise ImproperlyConfigured(f"{entry_where} has 'sentinel_kwargs' that is not a dict")
    return _sentinel_shard(entry_where, [tuple(item) for item in sentinels], service_name,
                           master, dict(sentinel))


def _sentinel_shard(entry_where: str, sentinels: list[tuple[str, int]], service_name: str,
                    master: dict[str, object], sentinel: dict[str, object]) -> ShardAddress:
    """The address, once every option is known and of the right type."""
    options = {}
    for kind, given, known in (("", master, MASTER_OPTIONS),
                               ("sentinel ", sentinel, SENTINEL_OPTIONS)):
        checked = {}
        for name, value in given.items():
            if name not in known:
                raise ImproperlyConfigured(
                    f"{entry_where} has an unknown {kind}option {name!r}; known: "
                    f"{', '.join(sorted(known))}")
            try:
                checked[name] = known[name](value)
            except ValueError:
                shown = "***" if name == "password" else repr(value)
                raise ImproperlyConfigured(
                    f"{entry_where} has a bad {kind}option {name}={shown}")
        options[kind] = checked
    hosts = ",".join(f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
                     for host, port in sentinels)
    label = f"sentinel://{hosts}/{service_name}"
    if options[""].get("db"):
        label += f"/{options['']['db']}"
    service = SentinelService(tuple(sentinels), service_name, options["sentinel "])
    return ShardAddress(label, options[""], service)
