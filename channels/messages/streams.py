"""The stream envelope (docs/message-standards.rst, "Streams"): several
logical streams over one WebSocket, each text frame a JSON object
``{"stream": name, "payload": value}``. ``channels.streams`` routes
them to consumers; anything that sends on a stream (presence, say) builds
its frames here. Nothing here does I/O.

``MAX_STREAM_NAME``, ``check_stream_name(name) -> str``
    A stream name is a ``str`` of 1 to 100 characters (the JavaScript
    client's ``MAX_STREAM_NAME`` is the same).
``payload_message(stream, payload) -> dict``
    The reply channel message that sends ``payload`` on ``stream``.
``error_message(stream, why) -> dict``
    The answer to a frame that was refused: ``{"stream": name or null,
    "error": why}``.
``parse_receive(content, streams) -> (stream, payload, error)``
    A ``websocket.receive`` read as a frame of one of ``streams``:
    ``(name, payload, None)``, or ``(name or None, None, why)``.
"""

from __future__ import annotations

import json
from collections.abc import Container
from typing import Any

#: Stream names are short labels chosen by the application; a longer one
#: in a frame is a client's mistake (and is not echoed back whole).
MAX_STREAM_NAME = 100

NOT_AN_ENVELOPE = 'not a stream envelope {"stream": ..., "payload": ...}'


def check_stream_name(name: object) -> str:
    if not isinstance(name, str) or not 0 < len(name) <= MAX_STREAM_NAME:
        raise ValueError(f"A stream name is a str of 1 to {MAX_STREAM_NAME} characters, "
                         f"not {name!r}")
    return name


def _frame(**fields: Any) -> dict[str, str]:
    return {"text": json.dumps(fields, separators=(",", ":"))}


def payload_message(stream: str, payload: Any) -> dict[str, str]:
    return _frame(stream=stream, payload=payload)


def error_message(stream: str | None, why: str) -> dict[str, str]:
    return _frame(stream=stream, error=why)


def parse_receive(content: dict[str, Any],
                  streams: Container[str]) -> tuple[str | None, Any, str | None]:
    text = content.get("text")
    if not isinstance(text, str):
        return None, None, "a binary frame: streams are JSON text frames"
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):  # nested deeper than Python recurses
        return None, None, "not JSON"
    if not isinstance(frame, dict) or not isinstance(frame.get("stream"), str):
        return None, None, NOT_AN_ENVELOPE
    name = frame["stream"]
    shown = name[:MAX_STREAM_NAME]
    if "payload" not in frame:
        return shown, None, "no payload"
    if len(name) > MAX_STREAM_NAME or name not in streams:
        return shown, None, "no such stream"
    return name, frame["payload"], None
