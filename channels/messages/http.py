"""Where HTTP meets the message standard (docs/message-standards.rst).

Every HTTP interface (the Twisted server, the WSGI adapter) builds its
messages and reads its consumers' responses through these functions, so
that the format is written down in code exactly once and two servers cannot
drift apart. Nothing here does I/O or touches a channel backend.

The API, kept small and stable:

Requests (interface server → worker)
    ``BODY_CHUNK_SIZE``
        Bytes of body per message: 512 KiB, half the message limit, so a
        chunk plus its headers always fits.
    ``connection_fields(target, headers, client, server, scheme) -> dict``
        ``path``, ``query_string``, ``query``, ``headers``, ``cookies``,
        ``client``, ``server``, ``scheme``: the fields ``http.request`` and
        ``websocket.connect`` share. ``target`` is the raw request target
        (``b"/a%20b/?x=1"``), ``headers`` raw ``(name, value)`` byte pairs,
        ``client`` and ``server`` ``(host, port)`` (the port may be a str,
        as WSGI gives it) or None.
    ``request_message(target, headers, client, server, scheme, *, reply_channel,
    method, http_version, body, body_channel, root_path="") -> dict``
        A complete ``http.request``. ``body`` is the whole body (then
        ``body_channel`` is None) or its first chunk.
    ``body_messages(chunks) -> Iterator[dict]``
        The ``http.request.body`` messages for the rest of a body, from any
        iterable of byte strings (a read loop, a list): re-cut to at most
        ``BODY_CHUNK_SIZE``, the last one with ``more_content`` false.
    ``split_body(body) -> (first_chunk, rest_messages)``
        For a body already in memory: what goes into ``http.request`` and
        what follows on the body channel (an empty list: no body channel).
    ``closed_body_message() -> dict``
        Ends a body stream whose client went away mid-upload.
    ``disconnect_message(reply_channel, path) -> dict``
        ``http.disconnect``.

Responses (consumer → interface server)
    ``response_start(message) -> ResponseStart``
        Validates the first message on a reply channel and returns its
        status, reason phrase, headers as latin-1 byte pairs ready to
        write, content and ``more_content``.
    ``response_chunk(message) -> ResponseChunk``
        Validates a later message (``content``, ``more_content``).
    ``MalformedResponse``
        What both raise for a message a server cannot write: the server
        logs it and answers 500 (or drops the connection if the status line
        is already out) instead of failing.
    ``ResponseAborted``
        The ``MalformedResponse`` that ``response_chunk`` raises for
        ``{"abort": True}``: the consumer failed mid-response, so the
        server drops the connection rather than end the response as if it
        were complete.
    ``ABORT``
        That message, for consumers to send.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from http import HTTPStatus
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote_from_bytes, unquote_to_bytes, urlsplit

from django.http.cookie import parse_cookie
from django.utils.encoding import repercent_broken_unicode

BODY_CHUNK_SIZE = 512 * 1024

RawHeaders = Iterable[tuple[bytes, bytes]]
Address = Sequence[Any] | None

# RFC 9110 token characters, for header names.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")


class MalformedResponse(ValueError):
    """A consumer sent a response message that cannot be written to a client."""


class ResponseAborted(MalformedResponse):
    """The consumer ended a started response with ``{"abort": True}``."""


ABORT = {"abort": True}


class ResponseStart(NamedTuple):
    status: int
    reason: str
    headers: list[tuple[bytes, bytes]]
    content: bytes
    more_content: bool


class ResponseChunk(NamedTuple):
    content: bytes
    more_content: bool


# Requests


def _address(address: Address) -> list[Any] | None:
    # (host, port), port possibly a str as in WSGI's environ; no host: unknown.
    if address is None or not address[0]:
        return None
    host, port = address[0], address[1]
    return [host if isinstance(host, str) else str(host), int(port or 0)]


def decode_path(raw_path: bytes) -> str:
    """Percent-decode a path as Django's WSGI handler does: bytes that are not
    UTF-8 stay percent-encoded rather than failing the request."""
    return repercent_broken_unicode(unquote_to_bytes(raw_path)).decode()


def connection_fields(target: bytes, headers: RawHeaders, client: Address,
                      server: Address, scheme: str) -> dict[str, Any]:
    """The fields that ``http.request`` and ``websocket.connect`` share."""
    if not target.startswith(b"/") and b"://" in target[:16]:
        # Absolute form (a request through a proxy): keep path and query.
        parts = urlsplit(target)
        target = parts.path or b"/"
        if parts.query:
            target += b"?" + parts.query
    raw_path, _, raw_query = target.partition(b"?")
    query_string = raw_query.decode("latin-1")
    query: dict[str, list[str]] = {}
    # Raw non-ASCII bytes (invalid, but sent) are read as UTF-8 like escapes.
    escaped = quote_from_bytes(raw_query, safe="%&=+;/?:@,$!*'()~[]")
    for name, value in parse_qsl(escaped, keep_blank_values=True, errors="replace"):
        query.setdefault(name, []).append(value)
    header_list = [[name.decode("latin-1").lower(), value.decode("latin-1")]
                   for name, value in headers]
    cookie_header = "; ".join(value for name, value in header_list if name == "cookie")
    return {
        "path": decode_path(raw_path or b"/"),
        "query_string": query_string,
        "query": query,
        "headers": header_list,
        "cookies": parse_cookie(cookie_header) if cookie_header else {},
        "client": _address(client),
        "server": _address(server),
        "scheme": scheme,
    }


def request_message(target: bytes, headers: RawHeaders, client: Address,
                    server: Address, scheme: str, *, reply_channel: str, method: str,
                    http_version: str, body: bytes, body_channel: str | None,
                    root_path: str = "") -> dict[str, Any]:
    """A complete ``http.request`` message."""
    if len(body) > BODY_CHUNK_SIZE:
        raise ValueError(
            f"body is {len(body)} bytes; at most BODY_CHUNK_SIZE ({BODY_CHUNK_SIZE}) "
            f"travel in http.request, the rest on a body channel (see split_body)"
        )
    message = connection_fields(target, headers, client, server, scheme)
    message.update(
        reply_channel=reply_channel,
        http_version=http_version,
        method=method.upper(),
        root_path=root_path,
        body=body,
        body_channel=body_channel,
    )
    return message


def _cut(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Non-empty pieces of at most BODY_CHUNK_SIZE bytes."""
    for chunk in chunks:
        for start in range(0, len(chunk), BODY_CHUNK_SIZE):
            yield bytes(chunk[start:start + BODY_CHUNK_SIZE])


def body_messages(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """``http.request.body`` messages carrying ``chunks``, in order.

    Looks one piece ahead so that the last message says ``more_content``
    false; an empty body still yields one (empty, final) message, because a
    consumer waiting on the body channel needs to hear that it ended.
    """
    pending = None
    for piece in _cut(chunks):
        if pending is not None:
            yield {"content": pending, "more_content": True}
        pending = piece
    yield {"content": pending or b"", "more_content": False}


def split_body(body: bytes) -> tuple[bytes, list[dict[str, Any]]]:
    """The first chunk of ``body`` for ``http.request`` and the messages for
    its body channel (none when the body fits in one message)."""
    first, rest = body[:BODY_CHUNK_SIZE], body[BODY_CHUNK_SIZE:]
    return first, (list(body_messages([rest])) if rest else [])


def closed_body_message() -> dict[str, Any]:
    return {"content": b"", "more_content": False, "closed": True}


def disconnect_message(reply_channel: str, path: str) -> dict[str, Any]:
    return {"reply_channel": reply_channel, "path": path}


# Responses


def _content(message: dict[str, Any]) -> tuple[bytes, bool]:
    content = message.get("content", b"")
    if not isinstance(content, bytes):
        raise MalformedResponse(
            f"response content must be bytes, not {type(content).__name__}"
        )
    more = message.get("more_content", False)
    if not isinstance(more, bool):
        raise MalformedResponse(
            f"response more_content must be a bool, not {type(more).__name__}"
        )
    return content, more


def _header(pair: object) -> tuple[bytes, bytes]:
    if not (isinstance(pair, list | tuple) and len(pair) == 2
            and all(isinstance(part, str) for part in pair)):
        raise MalformedResponse(f"response header {pair!r} is not a [name, value] pair of str")
    name, value = pair
    if not _TOKEN_RE.match(name):
        raise MalformedResponse(f"invalid response header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise MalformedResponse(f"response header {name!r} has a line break or NUL in its value")
    try:
        return name.encode("latin-1"), value.encode("latin-1")
    except UnicodeEncodeError:
        raise MalformedResponse(
            f"response header {name!r} is not latin-1; encode non-latin-1 text (RFC 8187)"
        ) from None


def response_start(message: object) -> ResponseStart:
    """Check the first response message; raise MalformedResponse if it
    cannot be written."""
    if not isinstance(message, dict):
        raise MalformedResponse(f"response must be a dict, not {type(message).__name__}")
    status = message.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 999:
        raise MalformedResponse(
            f"response status must be an int from 100 to 999, not {status!r}"
        )
    reason = message.get("reason")
    if reason is None:
        try:
            reason = HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown Status Code"
    elif not isinstance(reason, str) or re.search(r"[\r\n\0]", reason):
        raise MalformedResponse(f"response reason must be a one-line str, not {reason!r}")
    headers = message.get("headers", [])
    if not isinstance(headers, list | tuple):
        raise MalformedResponse(
            f"response headers must be a list of [name, value], not {type(headers).__name__}"
        )
    content, more = _content(message)
    return ResponseStart(status, reason, [_header(pair) for pair in headers], content, more)


def response_chunk(message: object) -> ResponseChunk:
    """Check a response message after the first."""
    if not isinstance(message, dict):
        raise MalformedResponse(f"response chunk must be a dict, not {type(message).__name__}")
    if message.get("abort"):
        raise ResponseAborted("the consumer aborted the response after it started")
    return ResponseChunk(*_content(message))
