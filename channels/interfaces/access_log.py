"""Access log lines in the common log format, one per answer the server
gives: a response, a refusal, a WebSocket handshake or close."""

from __future__ import annotations

import time
from typing import IO


class AccessLog:
    def __init__(self, stream: IO[str]):
        self.stream = stream

    def log(self, client: list | None, method: bytes | None, target: bytes | None,
            version: bytes | None, status: int, size: int) -> None:
        """One line; ``method`` None for an answer to bytes that were no
        request (a malformed or incomplete head), logged as ``"-"``."""
        host = client[0] if client else "-"
        when = time.strftime("%d/%b/%Y:%H:%M:%S %z")
        if method is None:
            request = "-"
        else:
            request = (f"{method.decode('latin-1')} {target.decode('latin-1')} "
                       f"HTTP/{version.decode('latin-1')}")
        self.stream.write(f'{host} - - [{when}] "{request}" {status} {size or "-"}\n')

    def flush(self) -> None:
        self.stream.flush()
