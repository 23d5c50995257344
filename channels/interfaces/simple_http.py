"""The common HTTP/1.1 exchange read and written without h11, for speed.

Most requests are a head alone (no body, no upgrade, no ``Expect``) that
arrives in one read, and most answers are one complete response. h11's
state machine costs more per request than the rest of the server's own
work; for that exchange it has nothing to decide. So ``read_simple``
accepts a request only if it is in a strict subset of what h11 accepts,
read the same way, and ``write_simple`` writes a response only if h11
would write the same bytes. Anything else returns None, and the
connection goes through h11 as before: a request the subset refuses is
never refused here, only read by h11, which accepts or refuses it.

The subset, against h11 (``h11._abnf``, ``h11._readers``): CRLF line ends
only, nothing before the request line or after the blank line (no
pipelined bytes), version exactly 1.1, a token method and visible-ASCII
target, no obs-fold, field values of visible characters only, exactly one
Host, and none of the fields that change framing or the connection
(Content-Length, Transfer-Encoding, Expect, Upgrade, Connection other than
``keep-alive``). Such a request has no body and keeps the connection
alive, as h11 would read it.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import NamedTuple

from channels.messages.http import ResponseStart

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# Stricter than h11's field value (which also lets through control
# characters other than NUL and whitespace): visible characters, single
# spaces or tabs between them.
_FIELD_VALUE = rb"(?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?"
_REQUEST_LINE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/1\.1")
_HEADER_LINE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*")
_VALUE = re.compile(_FIELD_VALUE)
_REASON = re.compile(rb"[ \t\x21-\x7e\x80-\xff]*")
_DIGITS = re.compile(rb"[0-9]+")

# Request fields that take a request out of the subset.
_FRAMING_FIELDS = frozenset(
    (b"content-length", b"transfer-encoding", b"expect", b"upgrade"))
# Response fields that h11 reads or rewrites (Host it moves to the front).
_RESPONSE_FIELDS_H11_READS = frozenset((b"transfer-encoding", b"connection", b"host"))

# Response header lines kept (``header_line``): responses repeat the same few.
HEADER_LINES_KEPT = 1024


class SimpleRequest(NamedTuple):
    """What the server reads of an ``h11.Request``, for a simple one."""

    method: bytes
    target: bytes
    http_version: bytes
    # (lower-cased name, value), as h11 gives them.
    headers: list[tuple[bytes, bytes]]


def read_simple(data: bytes) -> SimpleRequest | None:
    """The request that ``data`` is, all of it, if it is a simple one."""
    if len(data) < 4 or data.find(b"\r\n\r\n") != len(data) - 4:
        return None
    lines = data[:-4].split(b"\r\n")
    match = _REQUEST_LINE.fullmatch(lines[0])
    if match is None:
        return None
    headers = []
    hosts = 0
    for line in lines[1:]:
        field = _HEADER_LINE.fullmatch(line)
        if field is None:
            return None
        name, value = field.groups()
        name = name.lower()
        if name == b"host":
            hosts += 1
        elif name in _FRAMING_FIELDS or (
                name == b"connection" and value.lower() != b"keep-alive"):
            return None
        headers.append((name, value))
    if hosts != 1:
        return None
    method, target = match.groups()
    return SimpleRequest(method, target, b"1.1", headers)


def write_simple(start: ResponseStart, method: bytes) -> bytes | None:
    """The bytes of a complete response (``start`` with all its content)
    to a simple request, as h11 would write them with the length added; None
    if h11 would write anything else or refuse it."""
    status = start.status
    if start.more_content or not 200 <= status <= 999 or status in (204, 304):
        return None
    try:
        reason = start.reason.encode("latin-1")
    except UnicodeEncodeError:
        return None  # h11's way answers 500
    if _REASON.fullmatch(reason) is None:
        return None
    content = start.content
    lines = [b"HTTP/1.1 %d %s\r\n" % (status, reason)]
    length = None
    for pair in start.headers:
        line = header_line(pair)
        if type(line) is bytes:
            lines.append(line)
        elif line is None or length is not None or line != len(content):
            return None
        else:
            length = line
            lines.append(b"%s: %s\r\n" % pair)
    if length is None:
        lines.append(b"content-length: %d\r\n" % len(content))
    lines.append(b"\r\n")
    if method != b"HEAD":
        lines.append(content)
    return b"".join(lines)


@lru_cache(maxsize=HEADER_LINES_KEPT)
def header_line(pair: tuple[bytes, bytes]) -> bytes | int | None:
    """What write_simple makes of a response header: its line, the length a
    Content-Length gives, or None when h11 must write it. Kept in an LRU, so
    that values that never repeat (cookies) cannot grow it."""
    name, value = pair
    lower = name.lower()
    if lower in _RESPONSE_FIELDS_H11_READS or _VALUE.fullmatch(value) is None:
        return None
    if lower == b"content-length":
        return int(value) if _DIGITS.fullmatch(value) else None
    return b"%s: %s\r\n" % (name, value)
