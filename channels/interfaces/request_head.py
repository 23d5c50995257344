"""The rules a request head must pass before anything of it reaches the
channel layer or the WebSocket protocol, each with the status that refuses
it. One place for all of them, so that an upgrade request meets the same
limits as any other request before the server decides to upgrade.

Framing that two parsers could read two ways is refused rather than
guessed at (RFC 9112 §6.1 and §6.3): a proxy in front that took
Content-Length where h11 takes Transfer-Encoding would see one request
where the server sees two, and the second would be served to whoever's
connection the proxy reuses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import h11

if TYPE_CHECKING:
    from channels.interfaces.config import ServerConfig
    from channels.interfaces.security import HostPolicy

RawHeaders = list[tuple[bytes, bytes]]


class Refusal(NamedTuple):
    status: int
    text: str


class Head(NamedTuple):
    """What the rules need from a request head, read in one pass."""

    size: int
    host: str | None
    # Content-Length, which h11 has checked to be digits and the same in
    # every copy of the header.
    length: int | None
    chunked: bool
    # A WebSocket handshake: a GET asking to upgrade to websocket.
    upgrade: bool


def read_head(event: h11.Request, headers: RawHeaders) -> Head:
    size = len(event.target)
    host = length = None
    chunked = upgrade = connection = False
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name == b"host":
            if host is None:
                host = value.decode("latin-1")
        elif name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = True
        elif name == b"upgrade":
            upgrade = upgrade or b"websocket" in value.lower()
        elif name == b"connection":
            connection = connection or b"upgrade" in value.lower()
    return Head(size, host, length, chunked,
                upgrade and connection and event.method == b"GET")


def refusal(event: h11.Request, head: Head, config: ServerConfig,
            policy: HostPolicy) -> Refusal | None:
    """Why this request head is refused, or None. The connection is closed
    after the answer, so a refused head's body is never read as a request."""
    if event.http_version not in (b"1.0", b"1.1"):
        # h11 reads any HTTP/x.y; only 1.x is spoken here.
        return Refusal(505, "HTTP version not supported")
    # h11 limits only a head that arrives in pieces; one that came in a
    # single read is measured here.
    if head.size > config.max_header_size:
        return Refusal(431, "Request header fields too large")
    if not policy.host_allowed(head.host):
        return Refusal(400, "Host not allowed")
    if head.chunked and head.length is not None:
        return Refusal(400, "Content-Length and Transfer-Encoding together")
    if head.chunked and event.http_version == b"1.0":
        # HTTP/1.0 has no Transfer-Encoding: a 1.0 proxy would not know it.
        return Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
    if head.length is not None and head.length > config.max_body_size:
        return Refusal(413, "Request body too large")
    if head.upgrade and (head.chunked or head.length):
        return Refusal(400, "A WebSocket handshake has no body")
    return None
