"""Interface server options: defaults, Django settings, command options.

Every limit and timeout has a default that is safe to face the internet;
``CHANNELS_SERVER`` (a dict of the upper-case names below) changes them for a
project, and ``runwsserver`` options change them for one process. Settings
are read when a server is built, never at import time.
"""

from __future__ import annotations

import dataclasses
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from channels.backends.base import MAX_MESSAGE_SIZE


@dataclasses.dataclass
class ServerConfig:
    # Seconds a worker has to answer: an HTTP response (then 504) and the
    # websocket.connect decision (then the handshake fails with 503).
    http_timeout: float = 60.0
    connect_timeout: float = 5.0
    # Seconds a client may take to send a request head, and may stay silent
    # while sending a body or between keep-alive requests.
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive_timeout: float = 15.0
    # Sizes in bytes.
    max_header_size: int = 16 * 1024
    max_body_size: int = 64 * 1024 * 1024
    # A WebSocket message must fit one channel message with its envelope.
    max_message_size: int = MAX_MESSAGE_SIZE - 16 * 1024
    max_connections: int = 20000
    # WebSocket pings find dead peers; 0 disables them.
    ping_interval: float = 20.0
    ping_timeout: float = 30.0
    # Seconds a WebSocket client may leave its socket's buffer full
    # (unread) before it is dropped, so a client that stops reading
    # cannot make the server hold every broadcast for it.
    write_timeout: float = 30.0
    # Trust X-Forwarded-For / X-Forwarded-Proto (only behind a proxy).
    proxy_headers: bool = False
    # None: the hosts in ALLOWED_HOSTS.
    allowed_origins: list[str] | None = None
    root_path: str = ""
    access_log: IO[str] | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> ServerConfig:
        """Defaults, then ``CHANNELS_SERVER``, then ``overrides`` (None
        values are ignored, so command options that were not given keep
        the setting)."""
        fields = {f.name for f in dataclasses.fields(cls)}
        values: dict[str, Any] = {}
        configured = getattr(settings, "CHANNELS_SERVER", {}) or {}
        if not isinstance(configured, dict):
            raise ImproperlyConfigured("CHANNELS_SERVER must be a dict of option to value")
        for key, value in configured.items():
            name = str(key).lower()
            if name not in fields or name == "access_log":
                raise ImproperlyConfigured(
                    f"CHANNELS_SERVER has unknown option {key!r}; known: "
                    f"{', '.join(sorted(n.upper() for n in fields if n != 'access_log'))}"
                )
            values[name] = value
        origins = getattr(settings, "CHANNELS_ALLOWED_ORIGINS", None)
        if origins is not None:
            values["allowed_origins"] = list(origins)
        for name, value in overrides.items():
            if name not in fields:
                raise TypeError(f"Unknown server option {name!r}")
            if value is not None:
                values[name] = value
        config = cls(**values)
        config.validate()
        return config

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.type in ("float", "int") and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise ImproperlyConfigured(
                    f"Server option {f.name.upper()} must be a number of at least 0, "
                    f"not {value!r}"
                )
        for name in ("http_timeout", "connect_timeout", "max_header_size",
                     "max_message_size", "max_connections"):
            if getattr(self, name) <= 0:
                raise ImproperlyConfigured(f"Server option {name.upper()} must be above 0")
