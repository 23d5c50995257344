"""The user-facing handles on channels and groups."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from channels import names
from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends
from channels.backends.base import BaseChannelBackend

if TYPE_CHECKING:
    from django.http.response import HttpResponseBase


class Channel:
    """A named channel on a backend. Cheap to create; holds no connection."""

    def __init__(self, name: str, alias: str = DEFAULT_CHANNEL_BACKEND,
                 channel_backend: BaseChannelBackend | None = None):
        self.name = names.validate_name(name)
        self.alias = alias
        self._backend = channel_backend

    @property
    def channel_backend(self) -> BaseChannelBackend:
        # Looked up at use, so a Channel made at import time follows settings.
        return self._backend or channel_backends[self.alias]

    def send(self, content: dict[str, Any], *, immediately: bool = False) -> None:
        """Queue ``content``; raise ChannelFull if the channel is full. In a
        worker's consumer it is held for a moment and sent with the others
        of the worker's batch, and a full channel is logged then, unless
        ``immediately`` (docs/concepts.rst, "When a consumer's sends go")."""
        self.channel_backend.send(self.name, content, immediately=immediately)

    @classmethod
    def new_name(cls, prefix: str) -> str:
        """A unique, unguessable name (128 random bits) starting with ``prefix``."""
        return names.new_name(prefix)

    def as_view(self) -> Callable[..., HttpResponseBase]:
        """A Django view that sends each request onto this channel as an
        ``http.request`` message and returns the response a consumer sends
        to its reply channel: ``channels.worker.views.channel_view(self)``."""
        # Imported at use: views that never forward a request load none of
        # it. That module imports nothing that imports this one.
        from channels.worker.views import channel_view

        return channel_view(self)

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<Channel {self.name!r}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Channel) and other.name == self.name

    def __hash__(self) -> int:
        return hash(self.name)


class Group:
    """A named set of channels that receive broadcasts. Channels of
    vanished clients drop out by themselves: a WebSocket's reply channel
    when its socket closes or its server dies, any other member when its
    expiry passes unless re-added (docs/concepts.rst)."""

    def __init__(self, name: str, alias: str = DEFAULT_CHANNEL_BACKEND,
                 channel_backend: BaseChannelBackend | None = None):
        self.name = names.validate_name(name, "group")
        self.alias = alias
        self._backend = channel_backend

    @property
    def channel_backend(self) -> BaseChannelBackend:
        return self._backend or channel_backends[self.alias]

    def add(self, channel: Channel | str, expiry: float | None = None) -> None:
        self.channel_backend.group_add(self.name, str(channel), expiry=expiry)

    def discard(self, channel: Channel | str) -> None:
        self.channel_backend.group_discard(self.name, str(channel))

    def channels(self) -> list[str]:
        return self.channel_backend.group_channels(self.name)

    def send(self, content: dict[str, Any], *, immediately: bool = False) -> None:
        """Send to every member; held in a worker's consumer as
        ``Channel.send`` is."""
        self.channel_backend.send_group(self.name, content, immediately=immediately)

    def __repr__(self) -> str:
        return f"<Group {self.name!r}>"
