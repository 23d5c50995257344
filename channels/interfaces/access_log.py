"""Access log lines in the common log format, one per answer: responses,
handshakes and closes, and the errors the server gives itself (for a
request it could not read, the request is "-")."""

from __future__ import annotations

import time
from typing import IO


class AccessLog:
    def __init__(self, stream: IO[str]):
        self.stream = stream
        # The time as written, formatted once a second rather than per line.
        self.second = -1
        self.when = ""

    def log(self, client: list | None, method: bytes | None, target: bytes, version: bytes,
            status: int, size: int) -> None:
        host = client[0] if client else "-"
        now = time.time()
        second = int(now)
        if second != self.second:
            self.second = second
            self.when = time.strftime("%d/%b/%Y:%H:%M:%S %z", time.localtime(now))
        when = self.when
        request = "-" if method is None else (
            f"{method.decode('latin-1')} {target.decode('latin-1')} HTTP/{version.decode()}")
        self.stream.write(f'{host} - - [{when}] "{request}" {status} {size or "-"}\n')

    def flush(self) -> None:
        self.stream.flush()
