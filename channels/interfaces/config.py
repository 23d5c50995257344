"""Interface server options: defaults, Django settings, command options.

Every limit and timeout has a default that is safe to face the internet;
``CHANNELS_SERVER`` (a dict of the upper-case names below) changes them for a
project, and ``runwsserver`` options change them for one process. Settings
are read when a server is built, never at import time; the system check
``channels.E004`` reports their mistakes earlier, at ``manage.py check``.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from channels.backends.encoding import MAX_MESSAGE_SIZE
from channels.interfaces.security import origin_pattern_problem
from channels.messages.http import BODY_CHUNK_SIZE
from channels.metrics import address_problem


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
    # Bytes per second a request body must average over each BODY_TIMEOUT
    # while the server reads it (0: any progress will do), so that a client
    # trickling a byte now and then cannot hold a connection for ever.
    min_body_rate: int = 500
    keepalive_timeout: float = 15.0
    # Seconds that requests in progress get to be answered once the server
    # is told to stop (SIGTERM); those still running then get 503. As
    # gunicorn's graceful timeout; 0 answers them all 503 at once.
    shutdown_timeout: float = 30.0
    # Sizes in bytes.
    max_header_size: int = 16 * 1024
    max_body_size: int = 64 * 1024 * 1024
    # A WebSocket message must fit one channel message with its envelope.
    max_message_size: int = MAX_MESSAGE_SIZE - 16 * 1024
    # Open connections; also held below the process's descriptor limit
    # (RLIMIT_NOFILE), so that the next one is answered 503, not reset.
    max_connections: int = 20000
    # Open connections from one client address (0: no cap). Off by default:
    # behind a proxy every connection comes from the proxy's address.
    max_connections_per_client: int = 0
    # Send websocket.keepalive for each open socket every half EXPIRY (when
    # routed). Off: a socket's group memberships follow its socket and its
    # server's heartbeat, and need no renewal (docs/concepts.rst).
    websocket_keepalive: bool = False
    # WebSocket pings find dead peers and keep proxies from closing idle
    # sockets: a socket silent for PING_INTERVAL is pinged, and dropped if
    # its peer is still silent PING_TIMEOUT later (0: never dropped), so a
    # dead peer goes within their sum. The interval stays under the 60 s
    # idle timeouts of proxies' defaults (nginx's proxy_read_timeout, AWS
    # load balancers), with room for a busy server to be late, and as long
    # as that allows, since pings are nearly all an idle socket costs
    # (docs/interface-server.rst). 0 disables them.
    ping_interval: float = 45.0
    ping_timeout: float = 30.0
    # Seconds a client may leave its socket's buffer full (unread) with more
    # than its buffer limit waiting beyond it (max_response_buffer for an
    # HTTP response, max_websocket_buffer for a WebSocket), so a client that
    # stops reading cannot make the server hold every broadcast for it: an
    # HTTP connection is then dropped, a WebSocket closed with 1008. Past
    # the limit the reply channel is paused until the client catches up.
    write_timeout: float = 30.0
    max_response_buffer: int = 4 * 1024 * 1024
    max_websocket_buffer: int = 4 * 1024 * 1024
    # Messages of one WebSocket handed to the layer and not yet taken into
    # websocket.receive; past it the server stops reading the socket, so
    # that one socket cannot fill the channel that every socket shares.
    max_messages_in_flight: int = 4
    # Trust X-Forwarded-For / X-Forwarded-Proto (only behind a proxy).
    proxy_headers: bool = False
    # Origins allowed to open WebSockets: "scheme://host[:port]", with
    # "https://*.example.com" for subdomains, or "*" for any. None: the
    # request's own origin and CSRF_TRUSTED_ORIGINS.
    allowed_origins: list[str] | None = None
    root_path: str = ""
    # "HOST:PORT" (or "PORT", on 127.0.0.1) to serve Prometheus metrics on
    # at /metrics, apart from the public port; None: no metrics.
    metrics: str | None = None
    access_log: IO[str] | None = None

    @classmethod
    def from_settings(cls, **overrides: Any) -> ServerConfig:
        """Defaults, then ``CHANNELS_SERVER``, then ``overrides`` (None
        values are ignored, so command options that were not given keep
        the setting). Raises ImproperlyConfigured naming every problem."""
        values, sources, problems, _ = _setting_values()
        for name, value in overrides.items():
            if name not in _FIELDS:
                raise TypeError(f"Unknown server option {name!r}")
            if value is not None:
                values[name] = value
                sources.pop(name, None)
        config = cls(**values)
        problems += config.problems(sources)
        if problems:
            raise ImproperlyConfigured("\n".join(str(problem) for problem in problems))
        return config

    def problems(self, sources: dict[str, str] | None = None) -> list[ConfigProblem]:
        """What is wrong with these options. ``sources`` names where an
        option was set (``CHANNELS_SERVER['HTTP_TIMEOUT']``), so that a
        message points at the setting to fix; the others are named as
        options (``Server option HTTP_TIMEOUT``)."""
        sources = sources or {}
        found = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            where = sources.get(f.name, f"Server option {f.name.upper()}")
            problem = _value_problem(f, value, where)
            if problem is not None:
                found.append(problem)
        return found


@dataclasses.dataclass(frozen=True)
class ConfigProblem:
    """One unusable option: ``message`` names it and its value, ``hint``
    says what would do (the system check shows them apart; the exception
    from ``from_settings`` joins them)."""

    message: str
    hint: str

    def __str__(self) -> str:
        return f"{self.message}. {self.hint}"


def setting_problems() -> list[ConfigProblem]:
    """What is wrong with ``CHANNELS_SERVER`` and ``CHANNELS_ALLOWED_ORIGINS``
    alone (no command options), for the system check: it reports them at
    ``manage.py check`` and before any server starts, each with its hint."""
    values, sources, problems, _ = _setting_values()
    return problems + ServerConfig(**values).problems(sources)


def ignored_settings() -> list[str]:
    """Settings that another one overrides: CHANNELS_SERVER['ALLOWED_ORIGINS']
    when CHANNELS_ALLOWED_ORIGINS is set too."""
    return _setting_values()[3]


_FIELDS = {f.name: f for f in dataclasses.fields(ServerConfig)}
# Set only by runwsserver --access-log: a setting cannot hold an open file.
_COMMAND_ONLY = {"access_log"}
_SETTING_NAMES = sorted(name.upper() for name in _FIELDS if name not in _COMMAND_ONLY)
# Options for which 0 would mean "never" or "nothing", which makes no sense.
_POSITIVE = {"http_timeout", "connect_timeout", "max_header_size", "max_message_size",
             "max_connections", "max_messages_in_flight"}
# Responses arrive in chunks of up to BODY_CHUNK_SIZE: a client one chunk
# behind is reading, not stuck.
_MINIMUM = {"max_response_buffer": 2 * BODY_CHUNK_SIZE,
            "max_websocket_buffer": 2 * BODY_CHUNK_SIZE}


def _setting_values() -> tuple[dict[str, Any], dict[str, str], list[ConfigProblem], list[str]]:
    """The options that ``CHANNELS_SERVER`` and ``CHANNELS_ALLOWED_ORIGINS``
    set, where each was set, the problems that leave an option out (a
    setting that is not a dict, an unknown option), and the settings that
    another overrides."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    problems: list[ConfigProblem] = []
    configured = getattr(settings, "CHANNELS_SERVER", {}) or {}
    if not isinstance(configured, dict):
        problems.append(ConfigProblem(
            f"CHANNELS_SERVER must be a dict of option to value, not "
            f"{type(configured).__name__}",
            "Use upper-case option names as keys, such as {'HTTP_TIMEOUT': 30}."))
        configured = {}
    for key, value in configured.items():
        name = str(key).lower()
        if name not in _FIELDS or name in _COMMAND_ONLY:
            problems.append(ConfigProblem(f"CHANNELS_SERVER has unknown option {key!r}",
                                          _unknown_hint(name)))
            continue
        values[name] = value
        sources[name] = f"CHANNELS_SERVER[{key!r}]"
    ignored = []
    origins = getattr(settings, "CHANNELS_ALLOWED_ORIGINS", None)
    if origins is not None:
        if "allowed_origins" in sources:
            ignored.append(sources["allowed_origins"])
        values["allowed_origins"] = origins
        sources["allowed_origins"] = "CHANNELS_ALLOWED_ORIGINS"
    return values, sources, problems, ignored


def _unknown_hint(name: str) -> str:
    if name in _COMMAND_ONLY:
        return f"{name.upper()} is set with runwsserver --{name.replace('_', '-')} only."
    close = difflib.get_close_matches(name.upper(), _SETTING_NAMES, n=1)
    known = f"The options are {', '.join(_SETTING_NAMES)}."
    return f"Did you mean {close[0]!r}? {known}" if close else known


def _value_problem(f: dataclasses.Field, value: Any, where: str) -> ConfigProblem | None:
    """Why ``value`` cannot be option ``f`` (set at ``where``), or None.
    Field types are strings here (``from __future__ import annotations``)."""
    default = f"the default is {f.default!r}"
    if f.type in ("float", "int"):
        number = "a whole number" if f.type == "int" else "a number"
        allowed = int if f.type == "int" else int | float
        if isinstance(value, bool) or not isinstance(value, allowed):
            return ConfigProblem(f"{where} must be {number}, not {value!r}",
                                 f"Give {number}; {default}.")
        if f.name in _POSITIVE and value <= 0:
            return ConfigProblem(f"{where} must be above 0, not {value!r}",
                                 f"Give a positive number; {default}.")
        minimum = _MINIMUM.get(f.name, 0)
        if value < minimum:
            return ConfigProblem(f"{where} must be at least {minimum}, not {value!r}",
                                 f"Give {minimum} or more; {default}.")
    elif f.type == "bool" and not isinstance(value, bool):
        return ConfigProblem(f"{where} must be True or False, not {value!r}",
                             f"Give True or False; {default}.")
    elif f.name == "root_path" and not (isinstance(value, str)
                                        and (value == "" or value.startswith("/"))):
        # Request paths start with "/", so any other prefix never matches.
        return ConfigProblem(f"{where} must be '' or a path starting with '/', not {value!r}",
                             "Give the path the site is served under, such as '/app'.")
    elif f.name == "metrics" and value is not None and address_problem(value):
        return ConfigProblem(f"{where} must be an address to serve metrics on: "
                             f"{address_problem(value)}",
                             "Give 'HOST:PORT' or a port, apart from the public one; "
                             "None serves no metrics.")
    elif f.name == "allowed_origins" and value is not None:
        # A string would pass as a list of one-letter origins.
        if not isinstance(value, list | tuple | set | frozenset):
            return ConfigProblem(
                f"{where} must be a list of origins, not {value!r}",
                "Give a list such as ['https://app.example.com', 'https://*.example.com'], "
                "or None for each request's own origin and CSRF_TRUSTED_ORIGINS.")
        wrong = [problem for item in value if (problem := origin_pattern_problem(item))]
        if wrong:
            return ConfigProblem(
                f"{where} has entries that are not origins: {'; '.join(wrong)}",
                "An origin is scheme, host and port, such as 'https://app.example.com', "
                "'http://localhost:8000' or 'https://*.example.com'; '*' allows any.")
    return None
