"""Who may talk to the server: Host, Origin, and proxy headers.

The Host check happens before anything reaches the channel layer, so a
request for somebody else's domain (DNS rebinding, cache poisoning) never
costs a worker. The Origin check stops cross-site WebSocket hijacking: a
browser sends the page's origin with every WebSocket handshake, and only
pages of this site may open sockets carrying its cookies.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host


def allowed_hosts() -> list[str]:
    """ALLOWED_HOSTS, with Django's own fallback while DEBUG is on."""
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = [".localhost", "127.0.0.1", "[::1]"]
    return hosts


class HostPolicy:
    """Checks a request's Host and a handshake's Origin.

    ``origins`` entries are either full origins (``https://example.com``,
    matched exactly) or host patterns as in ALLOWED_HOSTS (``.example.com``,
    ``*``); ``None`` means the allowed hosts.
    """

    def __init__(self, hosts: Sequence[str], origins: Sequence[str] | None = None):
        self.hosts = list(hosts)
        origins = self.hosts if origins is None else list(origins)
        self.origin_urls = {o.lower().rstrip("/") for o in origins if "://" in o}
        self.origin_hosts = [o for o in origins if "://" not in o]

    def host_allowed(self, host: str | None) -> bool:
        if not host:
            return False
        domain, _ = split_domain_port(host)
        return bool(domain) and validate_host(domain, self.hosts)

    def origin_allowed(self, origin: str | None) -> bool:
        """A handshake without Origin comes from a non-browser client, which
        could send any Origin anyway; only browsers need stopping."""
        if origin is None:
            return True
        origin = origin.strip().lower()
        if origin in self.origin_urls:
            return True
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        domain, _ = split_domain_port(parts.netloc)
        return bool(domain) and validate_host(domain, self.origin_hosts)


def forwarded_client(headers: dict[str, str], client: list | None) -> list | None:
    """The client address from X-Forwarded-For: its last entry, the one our
    own proxy appended (earlier ones are whatever the client claimed)."""
    value = headers.get("x-forwarded-for")
    if not value:
        return client
    address = value.split(",")[-1].strip()
    port = headers.get("x-forwarded-port", "")
    return [address, int(port) if port.isdigit() else 0]


def forwarded_secure(headers: dict[str, str], secure: bool) -> bool:
    proto = headers.get("x-forwarded-proto", "").split(",")[-1].strip().lower()
    return {"https": True, "wss": True, "http": False, "ws": False}.get(proto, secure)
