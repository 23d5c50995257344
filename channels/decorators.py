"""Decorators for consumers."""

from __future__ import annotations

from collections.abc import Callable

from channels.backends import DEFAULT_CHANNEL_BACKEND
from channels.names import validate_name
from channels.registry import Consumer, decorated


def consumer(
    *channels: str, alias: str = DEFAULT_CHANNEL_BACKEND
) -> Callable[[Consumer], Consumer]:
    """Route ``channels`` to the decorated function on backend ``alias``.

    Put decorated consumers in an app's ``consumers.py``: it is imported when
    Django starts, so workers know them without a ROUTING entry.
    """
    if not channels:
        raise TypeError("@consumer needs at least one channel name")
    for name in channels:
        validate_name(name)

    def register(func: Consumer) -> Consumer:
        decorated.append((alias, channels, func))
        return func

    return register
