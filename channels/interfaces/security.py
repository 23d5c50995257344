"""Who may talk to the server: Host, Origin, and proxy headers.

The Host check happens before anything reaches the channel layer, so a
request for somebody else's domain (DNS rebinding, cache poisoning) never
costs a worker. The Origin check stops cross-site WebSocket hijacking: a
browser sends the page's origin with every WebSocket handshake, and only
pages of this site may open sockets carrying its cookies. An origin is a
scheme, a host and a port, and all three must match, as in Django's CSRF
check: ``http://example.com:9999`` is another site than
``https://example.com``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host
from django.utils.http import is_same_domain

DEFAULT_PORTS = {"http": 80, "https": 443}
# A proxy appends one entry per hop; a longer header is made up.
MAX_FORWARDED_LENGTH = 1024


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS, with Django's own fallback while DEBUG is on."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


def trusted_origins(configured: Sequence[str] | None) -> list[str]:
    """The origins trusted besides a request's own: ``ALLOWED_ORIGINS``
    when set, else ``CSRF_TRUSTED_ORIGINS``, which Django already trusts
    to post forms with the user's cookies."""
    if configured is not None:
        return list(configured)
    return list(getattr(settings, "CSRF_TRUSTED_ORIGINS", []))


class Origin(NamedTuple):
    scheme: str
    host: str
    port: int


def parse_origin(value: str) -> Origin | None:
    """``scheme://host[:port]`` as a browser sends it, or None for anything
    else (``null``, a path, user info, another scheme, a bad port)."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if (scheme not in DEFAULT_PORTS or not parts.hostname or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query
            or parts.fragment):
        return None
    return Origin(scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme])


def parse_origin_pattern(entry: str) -> tuple[Origin, bool] | None:
    """An allowed origin: ``scheme://host[:port]``, the host possibly
    ``*.example.com`` (the domain and its subdomains, as in
    CSRF_TRUSTED_ORIGINS); the parsed origin and whether it is such a
    wildcard, or None."""
    wildcard = "://*." in entry
    parsed = parse_origin(entry.replace("://*.", "://", 1))
    return None if parsed is None else (parsed, wildcard)


def origin_pattern_problem(entry: object) -> str | None:
    """Why ``entry`` cannot be an allowed origin, or None: it must be
    ``*`` (any origin) or what ``parse_origin_pattern`` reads."""
    if entry == "*":
        return None
    if not isinstance(entry, str) or "://" not in entry:
        return (f"{entry!r} is not an origin: give the scheme too, such as "
                f"'https://{str(entry).lstrip('.*') or 'example.com'}'")
    if parse_origin_pattern(entry) is None:
        return f"{entry!r} is not an origin of the form http(s)://host[:port]"
    return None


HOSTS_DECIDED_KEPT = 256


class HostPolicy:
    """Checks a request's Host and a handshake's Origin.

    ``origins`` are the trusted origins besides each request's own (see
    ``trusted_origins``): ``https://example.com:8443``,
    ``https://*.example.com`` for its subdomains, or ``*`` for any origin.
    A request's own origin counts only when ``own_origin`` is true (the
    default, when ALLOWED_ORIGINS is not set).
    """

    def __init__(self, hosts: Sequence[str], origins: Sequence[str] = (),
                 own_origin: bool = True):
        self.hosts = list(hosts)
        # Host headers already decided: clients send the same few, and a
        # decision costs more than a look-up. An LRU, since any client can
        # send any Host.
        self.decided = lru_cache(maxsize=HOSTS_DECIDED_KEPT)(self.decide_host)
        self.own_origin = own_origin
        self.any_origin = "*" in origins
        self.exact: set[Origin] = set()
        self.subdomains: list[Origin] = []
        for entry in origins:
            pattern = None if entry == "*" else parse_origin_pattern(entry)
            if pattern is None:
                continue  # "*", or reported by the system check (channels.E004)
            parsed, wildcard = pattern
            if wildcard:
                self.subdomains.append(parsed._replace(host="." + parsed.host))
            else:
                self.exact.add(parsed)

    def host_allowed(self, host: str | None) -> bool:
        return bool(host) and self.decided(host)

    def decide_host(self, host: str) -> bool:
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.hosts)

    def origin_allowed(self, origin: str | None, secure: bool = False,
                       host: str | None = None) -> bool:
        """Whether a handshake from ``origin`` may open a socket to ``host``
        (its Host header, already checked) over http (``secure``: https).
        A handshake without Origin comes from a non-browser client, which
        could send any Origin anyway; only browsers need stopping."""
        if origin is None or self.any_origin:
            return True
        parsed = parse_origin(origin)
        if parsed is None:
            return False
        if self.own_origin and host and parsed == self.request_origin(secure, host):
            return True
        if parsed in self.exact:
            return True
        return any(parsed.scheme == pattern.scheme and parsed.port == pattern.port
                   and is_same_domain(parsed.host, pattern.host)
                   for pattern in self.subdomains)

    @staticmethod
    def request_origin(secure: bool, host: str) -> Origin | None:
        """The origin of the site as the request names it, as Django's CSRF
        check derives it: the scheme it came in with and its Host."""
        scheme = "https" if secure else "http"
        domain, port = split_domain_port(host)
        if not domain:
            return None
        if not port:
            return Origin(scheme, domain, DEFAULT_PORTS[scheme])
        if not (port.isascii() and port.isdigit() and len(port) <= 5):
            return None
        return Origin(scheme, domain, int(port))


class BadProxyHeader(ValueError):
    """A proxy header that no proxy would send: the request gets 400."""

    def __init__(self, name: str, value: str):
        shown = value if len(value) <= 80 else value[:80] + "..."
        super().__init__(f"{name}: {shown!r}")
        self.name = name


PROXY_SCHEMES = {"https": True, "wss": True, "http": False, "ws": False}


def _last_entry(headers: dict[str, str], name: str) -> str | None:
    """The last comma-separated entry of a header, the one our own proxy
    wrote (earlier ones are whatever the client claimed)."""
    value = headers.get(name)
    if value is None:
        return None
    if len(value) > MAX_FORWARDED_LENGTH:
        raise BadProxyHeader(name, value)
    entry = value.split(",")[-1].strip()
    if not entry:
        raise BadProxyHeader(name, value)
    return entry


def forwarded_client(headers: dict[str, str], client: list | None) -> list | None:
    """The client address from X-Forwarded-For (an IPv4 or IPv6 address)
    and X-Forwarded-Port (1 to 65535, ASCII digits). Raises BadProxyHeader."""
    address = _last_entry(headers, "x-forwarded-for")
    port_text = _last_entry(headers, "x-forwarded-port")
    port = 0
    if port_text is not None:
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5
                and 0 < int(port_text) <= 65535):
            raise BadProxyHeader("x-forwarded-port", headers["x-forwarded-port"])
        port = int(port_text)
    if address is None:
        return client
    try:
        address = str(ipaddress.ip_address(address))
    except ValueError:
        raise BadProxyHeader("x-forwarded-for", headers["x-forwarded-for"]) from None
    return [address, port]


def forwarded_secure(headers: dict[str, str], secure: bool) -> bool:
    """Whether the client came in over TLS, from X-Forwarded-Proto (http,
    https, ws or wss). Raises BadProxyHeader."""
    proto = _last_entry(headers, "x-forwarded-proto")
    if proto is None:
        return secure
    try:
        return PROXY_SCHEMES[proto.lower()]
    except KeyError:
        raise BadProxyHeader("x-forwarded-proto", headers["x-forwarded-proto"]) from None
