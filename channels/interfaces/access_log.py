"""Access log lines in the common log format: one per HTTP response, and
one when a WebSocket opens and when it closes."""

from __future__ import annotations

import time
from typing import IO


class AccessLog:
    def __init__(self, stream: IO[str]):
        self.stream = stream

    def log(self, client: list | None, method: bytes, target: bytes, version: bytes,
            status: int, size: int) -> None:
        request = f"{method.decode('latin-1')} {target.decode('latin-1')} HTTP/{version.decode()}"
        self._write(client, request, status, size or "-")

    def websocket(self, client: list | None, event: str, path: str,
                  code: int | None = None) -> None:
        """``WSCONNECT path`` when a socket opens, ``WSDISCONNECT path``
        with the close code when it closes."""
        self._write(client, f"{event} {path}", code or "-", "-")

    def _write(self, client: list | None, request: str, status: object, size: object) -> None:
        host = client[0] if client else "-"
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        self.stream.write(f'{host} - - [{when}] "{request}" {status} {size}\n')

    def flush(self) -> None:
        self.stream.flush()
