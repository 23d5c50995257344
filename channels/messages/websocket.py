"""Where WebSocket meets the message standard (docs/message-standards.rst).

The interface server builds what a connection tells the workers here, and
reads what a consumer sends back on the reply channel through these
functions; the worker answers a connect with them. Nothing here does I/O.

Connection → worker (each numbered by ``order`` on its connection)
    ``connect_message(fields, reply_channel) -> dict``
        ``websocket.connect``: the handshake's ``connection_fields`` (see
        ``channels.messages.http``), order 0.
    ``receive_message(reply_channel, path, order, payload, binary) -> dict``
        ``websocket.receive``: ``bytes`` for a binary message, else ``text``.
    ``keepalive_message(reply_channel, path) -> dict``
        ``websocket.keepalive``.
    ``disconnect_message(reply_channel, path, order, code) -> dict``
        ``websocket.disconnect``; no code (no close frame) is 1006.

Consumer → reply channel
    ``accept_message()``, ``close_message(code=None)``
        What a worker sends when a connect consumer returns or raises.
    ``handshake_decision(content) -> bool | None``
        What a reply means for a handshake still waiting: accept (True),
        reject with 403 (False), or nothing yet (None).
    ``close_code(close) -> int | None``
        The close code that a reply's ``close`` field asks for.
    ``InvalidCloseCode``
        What ``close_code`` raises for a code an application may not send:
        the server closes with 1000 instead.
"""

from __future__ import annotations

from typing import Any

NORMAL_CLOSURE = 1000
# No close frame came: the connection dropped.
ABNORMAL_CLOSURE = 1006


class InvalidCloseCode(ValueError):
    """A reply asked to close with a code that applications may not send
    (only 1000 and 3000-4999 are theirs)."""


# Connection → worker.


def connect_message(fields: dict[str, Any], reply_channel: str) -> dict[str, Any]:
    """``websocket.connect`` from the handshake's connection fields."""
    return {**fields, "reply_channel": reply_channel, "order": 0}


def receive_message(reply_channel: str, path: str, order: int, payload: bytes,
                    binary: bool) -> dict[str, Any]:
    """``websocket.receive`` for one message from the client (its payload
    as Autobahn gives it: UTF-8 already checked for text)."""
    if binary:
        return {"reply_channel": reply_channel, "path": path, "order": order,
                "bytes": payload}
    return {"reply_channel": reply_channel, "path": path, "order": order,
            "text": payload.decode("utf-8")}


def keepalive_message(reply_channel: str, path: str) -> dict[str, Any]:
    return {"reply_channel": reply_channel, "path": path}


def disconnect_message(reply_channel: str, path: str, order: int,
                       code: int | None) -> dict[str, Any]:
    """``websocket.disconnect``; ``code`` None or 0 when no close frame came."""
    return {"reply_channel": reply_channel, "path": path, "order": order,
            "code": code or ABNORMAL_CLOSURE}


# Consumer → reply channel.


def accept_message() -> dict[str, Any]:
    return {"accept": True}


def close_message(code: int | None = None) -> dict[str, Any]:
    return {"close": True if code is None else code}


def _has_frame(content: dict[str, Any]) -> bool:
    return content.get("text") is not None or content.get("bytes") is not None


def handshake_decision(content: dict[str, Any]) -> bool | None:
    """Accept (True), reject with 403 (False), or None: the reply decides
    nothing and is ignored. A frame or ``close`` in an accepting reply is
    sent once the socket is open; ``close`` without a frame rejects."""
    accept = content.get("accept")
    if accept is False:
        return False
    close = content.get("close")
    has_frame = _has_frame(content)
    if close not in (None, False) and not has_frame:
        return False
    if accept or has_frame or close:
        return True
    return None


def close_code(close: Any) -> int | None:
    """The code to close with for a reply's ``close`` field: None for no
    close (absent, None, False), 1000 for True, else the code, if it is one
    that applications may send (raise InvalidCloseCode if not)."""
    if close in (None, False):
        return None
    code = NORMAL_CLOSURE if close is True else close
    if isinstance(code, int) and (code == NORMAL_CLOSURE or 3000 <= code <= 4999):
        return code
    raise InvalidCloseCode(f"invalid close code {close!r}")
