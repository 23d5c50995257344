"""Which consumer runs for which channel.

A backend's registry is assembled from its ``ROUTING`` setting, the
``@consumer`` decorator and the built-in defaults. Exactly one consumer may
own a channel, because a message is delivered to one listener only: two
consumers on one channel would each silently see half of the traffic.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from channels.exceptions import InvalidChannelName
from channels.names import validate_name

Consumer = Callable[..., object]

# Filled by @consumer at import time of each app's consumers.py; read when a
# backend first builds its registry. Entries: (alias, channel names, consumer).
decorated: list[tuple[str, tuple[str, ...], Consumer]] = []

# Consumers that exist unless the project routes the channel itself.
DEFAULT_ROUTING: dict[str, str] = {
    "__channels__.echo": "channels.consumers.echo",
    # Django's own request handling: HTTP works with no routing at all.
    "http.request": "channels.worker.handler.http_consumer",
}


def _name(consumer: Consumer) -> str:
    return f"{getattr(consumer, '__module__', '?')}.{getattr(consumer, '__qualname__', consumer)!s}"


def _resolve(consumer: Consumer | str, where: str) -> Consumer:
    if isinstance(consumer, str):
        try:
            consumer = import_string(consumer)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"{where}: cannot import consumer {consumer!r}: {exc}"
            ) from exc
    if not callable(consumer):
        raise ImproperlyConfigured(f"{where}: consumer {consumer!r} is not callable")
    return consumer


class ConsumerRegistry:
    """Maps channel names to consumer callables."""

    def __init__(self, routing: Mapping[str, Consumer | str] | None = None,
                 alias: str = "default"):
        self.alias = alias
        self.consumers: dict[str, Consumer] = {}
        where = f"CHANNEL_BACKENDS[{alias!r}]['ROUTING']"
        for channel, consumer in (routing or {}).items():
            self.add_consumer(_resolve(consumer, where), [channel])
        for entry_alias, channels, consumer in decorated:
            if entry_alias == alias:
                self.add_consumer(consumer, channels)
        for channel, path in DEFAULT_ROUTING.items():
            if channel not in self.consumers:
                self.consumers[channel] = _resolve(path, "channels defaults")

    def add_consumer(self, consumer: Consumer, channels: Iterable[str]) -> None:
        if isinstance(channels, str):
            raise TypeError("channels must be a list of names, not a str")
        for channel in channels:
            try:
                validate_name(channel)
            except InvalidChannelName as exc:
                raise ImproperlyConfigured(
                    f"Cannot route to {_name(consumer)} on backend {self.alias!r}: {exc}"
                ) from exc
            existing = self.consumers.get(channel)
            if existing is not None and existing is not consumer:
                raise ImproperlyConfigured(
                    f"Channel {channel!r} already has consumer {_name(existing)}; "
                    f"cannot also route it to {_name(consumer)} "
                    f"(backend {self.alias!r}). Each channel has exactly one consumer."
                )
            self.consumers[channel] = consumer

    def consumer_for_channel(self, channel: str) -> Consumer | None:
        return self.consumers.get(channel)

    def all_channel_names(self) -> list[str]:
        return sorted(self.consumers)


def load_routing(routing: object, alias: str) -> Mapping[str, Consumer | str]:
    """Turn a ROUTING setting (a dict or its dotted path) into a dict."""
    if routing is None:
        return {}
    if isinstance(routing, str):
        try:
            routing = import_string(routing)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"CHANNEL_BACKENDS[{alias!r}]['ROUTING'] = {routing!r} "
                f"does not import: {exc}"
            ) from exc
    if not isinstance(routing, Mapping):
        raise ImproperlyConfigured(
            f"CHANNEL_BACKENDS[{alias!r}]['ROUTING'] must be a dict of channel "
            f"name to consumer, not {type(routing).__name__}"
        )
    return routing
