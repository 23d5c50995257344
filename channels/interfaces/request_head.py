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


def header(headers: RawHeaders, wanted: bytes) -> bytes | None:
    """The first value of header ``wanted`` (lower-case), or None."""
    for name, value in headers:
        if name == wanted:
            return value
    return None


def is_upgrade(event: h11.Request, headers: RawHeaders) -> bool:
    """A WebSocket handshake: a GET asking to upgrade to websocket."""
    upgrade = connection = False
    for name, value in headers:
        if name == b"upgrade" and b"websocket" in value.lower():
            upgrade = True
        elif name == b"connection" and b"upgrade" in value.lower():
            connection = True
    return upgrade and connection and event.method == b"GET"


def declared_length(headers: RawHeaders) -> int | None:
    """Content-Length, which h11 has checked to be digits and the same in
    every copy of the header."""
    value = header(headers, b"content-length")
    return None if value is None else int(value)


def refusal(event: h11.Request, headers: RawHeaders, config: ServerConfig,
            policy: HostPolicy) -> Refusal | None:
    """Why this request head is refused, or None. The connection is closed
    after the answer, so a refused head's body is never read as a request."""
    # h11 limits only a head that arrives in pieces; one that came in a
    # single read is measured here.
    size = len(event.target) + sum(len(n) + len(v) + 4 for n, v in headers)
    if size > config.max_header_size:
        return Refusal(431, "Request header fields too large")
    if event.http_version not in (b"1.0", b"1.1"):
        # h11 reads any HTTP/x.y; only 1.x is spoken here.
        return Refusal(505, "HTTP version not supported")
    host = header(headers, b"host")
    if not policy.host_allowed(None if host is None else host.decode("latin-1")):
        return Refusal(400, "Host not allowed")
    chunked = header(headers, b"transfer-encoding") is not None
    length = declared_length(headers)
    if chunked and length is not None:
        return Refusal(400, "Content-Length and Transfer-Encoding together")
    if chunked and event.http_version == b"1.0":
        # HTTP/1.0 has no Transfer-Encoding: a 1.0 proxy would not know it.
        return Refusal(400, "Transfer-Encoding in an HTTP/1.0 request")
    if length is not None and length > config.max_body_size:
        return Refusal(413, "Request body too large")
    if is_upgrade(event, headers) and (chunked or length):
        return Refusal(400, "A WebSocket handshake has no body")
    return None
