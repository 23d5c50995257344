"""Where HTTP meets the message standard (docs/message-standards.rst).

Every HTTP interface (the Twisted server, the WSGI adapter, a
``Channel.as_view`` view) builds its messages and reads its consumers'
responses through these functions, and the worker side builds its responses
and reads request bodies through them too, so that the format is written
down in code exactly once and two servers cannot drift apart. Nothing here
does I/O or touches a channel backend.

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
    ``split_stream(pieces) -> (first_chunk, rest_messages or None)``
        For a body read in pieces by a blocking server: what goes into
        ``http.request``, and the messages that follow on its body channel
        (None: the body fits, no body channel).
    ``split_body(body) -> (first_chunk, rest_messages)``
        The same for a body already in memory (an empty list: no body
        channel).
    ``BodyBuffer``
        The same for a body that arrives in reads of any size, for a server
        that cannot block: whole chunks while more may come, then the rest.
    ``closed_body_message() -> dict``
        Ends a body stream whose client went away mid-upload.
    ``body_chunk(message) -> BodyChunk``
        Checks an ``http.request.body`` message, for the body's reader
        (``MalformedBody`` if it is not one).
    ``disconnect_message(reply_channel, path) -> dict``
        ``http.disconnect``.

Responses (consumer → interface server)
    ``response_messages(status, headers, content, reason=None) -> Iterator[dict]``
    ``streamed_response_messages(status, headers, pieces, reason=None) -> Iterator[dict]``
        A response's messages: status and headers first, content in chunks
        of at most ``BODY_CHUNK_SIZE``; the streamed form sends each piece
        as it comes, so that a client sees a stream progress.
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
from functools import lru_cache
from http import HTTPStatus
from itertools import chain
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote_from_bytes, unquote_to_bytes, urlsplit

from django.http.cookie import parse_cookie
from django.utils.encoding import repercent_broken_unicode

BODY_CHUNK_SIZE = 512 * 1024

RawHeaders = Iterable[tuple[bytes, bytes]]
Address = Sequence[Any] | None

# RFC 9110 token characters, for header names.
_TOKEN_RE = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_LINE_BREAK_RE = re.compile(r"[\r\n\0]")
# Response headers checked and kept (``checked_header``): a project's
# responses repeat the same few, and a look-up costs a fraction of the check.
CHECKED_HEADERS_KEPT = 1024


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
    if b"%" not in raw_path and raw_path.isascii():
        return raw_path.decode("ascii")  # nothing to decode (most paths)
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
    if raw_query:
        # Raw non-ASCII bytes (invalid, but sent) are read as UTF-8 like escapes.
        escaped = quote_from_bytes(raw_query, safe="%&=+;/?:@,$!*'()~[]")
        for name, value in parse_qsl(escaped, keep_blank_values=True, errors="replace"):
            query.setdefault(name, []).append(value)
    header_list = [[name.decode("latin-1").lower(), value.decode("latin-1")]
                   for name, value in headers]
    cookies = [value for name, value in header_list if name == "cookie"]
    cookie_header = "; ".join(cookies) if cookies else ""
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


def split_stream(pieces: Iterable[bytes]) -> tuple[bytes, Iterator[dict[str, Any]] | None]:
    """The first chunk of a body read in ``pieces`` (any sizes), for
    ``http.request``, and the messages for its body channel, read from
    ``pieces`` as they are iterated; None when the body fits in one message."""
    cut = _cut(pieces)
    first, second = next(cut, b""), next(cut, None)
    if second is None:
        return first, None
    return first, body_messages(chain([second], cut))


def split_body(body: bytes) -> tuple[bytes, list[dict[str, Any]]]:
    """The first chunk of ``body`` for ``http.request`` and the messages for
    its body channel (none when the body fits in one message)."""
    first, rest = split_stream([body])
    return first, [] if rest is None else list(rest)


class BodyBuffer:
    """A request body arriving in reads of any size, held until it can be
    cut into its messages: the first chunk (for ``http.request``) once the
    body is complete or more than a chunk has come; then whole chunks while
    more may come, and at the end the rest, maybe empty, as the last.
    Whole chunks make the fewest messages of an upload."""

    __slots__ = ("pieces", "size", "complete")

    def __init__(self) -> None:
        # None once the last message is out (or the body is dropped).
        self.pieces: list[bytes] | None = []
        # Bytes held.
        self.size = 0
        # The whole body has been received.
        self.complete = False

    def add(self, data: bytes, end: bool = False) -> None:
        if data and self.pieces is not None:
            self.pieces.append(data)
            self.size += len(data)
        if end:
            self.complete = True

    @property
    def first_ready(self) -> bool:
        """Enough has come to send ``http.request``."""
        return self.complete or self.size > BODY_CHUNK_SIZE

    @property
    def exhausted(self) -> bool:
        """The last message is out, or the body was dropped."""
        return self.pieces is None

    @property
    def chunk_waiting(self) -> bool:
        """A whole chunk is held that the body channel has yet to take."""
        return self.size >= BODY_CHUNK_SIZE and not self.complete

    def first_chunk(self) -> tuple[bytes, bool]:
        """The first chunk, and whether more follows (on a body channel)."""
        first = self._take()
        if self.complete and not self.size:
            self.pieces = None
        return first, self.pieces is not None

    def next_message(self) -> dict[str, Any] | None:
        """The next ``http.request.body`` message, or None until one is
        whole (and after the last)."""
        if self.pieces is None or (self.size < BODY_CHUNK_SIZE and not self.complete):
            return None
        content = self._take()
        last = self.complete and not self.size
        if last:
            self.pieces = None
        return {"content": content, "more_content": not last}

    def drop(self) -> None:
        """Nobody wants the rest."""
        self.pieces = None
        self.size = 0

    def _take(self) -> bytes:
        data = b"".join(self.pieces)
        first, rest = data[:BODY_CHUNK_SIZE], data[BODY_CHUNK_SIZE:]
        self.pieces = [rest] if rest else []
        self.size = len(rest)
        return first


class MalformedBody(ValueError):
    """A message on a body channel is not an ``http.request.body``."""


class BodyChunk(NamedTuple):
    content: bytes
    more_content: bool
    # The client went away: no more will come.
    closed: bool


def closed_body_message() -> dict[str, Any]:
    return {"content": b"", "more_content": False, "closed": True}


def body_chunk(message: object) -> BodyChunk:
    """Check an ``http.request.body`` message; raise MalformedBody if it is
    not one."""
    if not isinstance(message, dict):
        raise MalformedBody(f"body chunk must be a dict, not {type(message).__name__}")
    if message.get("closed"):
        return BodyChunk(b"", False, True)
    content, more = message.get("content"), message.get("more_content")
    if not isinstance(content, bytes) or not isinstance(more, bool):
        raise MalformedBody("body chunk needs bytes content and a bool more_content")
    return BodyChunk(content, more, False)


def disconnect_message(reply_channel: str, path: str) -> dict[str, Any]:
    return {"reply_channel": reply_channel, "path": path}


# Responses


def _head(status: int, headers: list[list[str]], reason: str | None) -> dict[str, Any]:
    if reason is None:
        return {"status": status, "headers": headers}
    return {"status": status, "reason": reason, "headers": headers}


def response_messages(status: int, headers: list[list[str]], content: bytes,
                      reason: str | None = None) -> Iterator[dict[str, Any]]:
    """The messages of a response whose content is all in hand: the first
    carries status, headers and the first chunk."""
    start = _head(status, headers, reason)
    if len(content) <= BODY_CHUNK_SIZE:
        start["content"] = content
        start["more_content"] = False
        yield start
        return
    messages = body_messages([content])
    yield {**start, **next(messages)}
    yield from messages


def streamed_response_messages(status: int, headers: list[list[str]], pieces: Iterable[bytes],
                               reason: str | None = None) -> Iterator[dict[str, Any]]:
    """The messages of a response whose content comes in ``pieces`` (an
    iterator that may take its time): status and headers at once, then each
    piece as it comes (cut to at most ``BODY_CHUNK_SIZE``), then the end."""
    yield {**_head(status, headers, reason), "content": b"", "more_content": True}
    for piece in _cut(pieces):
        yield {"content": piece, "more_content": True}
    yield {"content": b"", "more_content": False}


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
    if (type(pair) in (list, tuple) and len(pair) == 2
            and type(pair[0]) is str and type(pair[1]) is str):
        return checked_header(pair[0], pair[1])
    return _check_header(pair)


@lru_cache(maxsize=CHECKED_HEADERS_KEPT)
def checked_header(name: str, value: str) -> tuple[bytes, bytes]:
    """A response header of str, checked and encoded; kept, since the same
    few come again (an LRU, so that values that never repeat, such as
    cookies, cannot grow it)."""
    return _check_header((name, value))


def _check_header(pair: object) -> tuple[bytes, bytes]:
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
    elif not isinstance(reason, str) or _LINE_BREAK_RE.search(reason):
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
