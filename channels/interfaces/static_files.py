"""Static files answered by the interface server itself, never through the
channel layer: a worker's time and two trips through Redis per file would
buy nothing (docs/benchmarks.rst has the figures).

In development (``DEBUG``, or ``runserver --insecure``) the files come from
the staticfiles finders, as Django's ``runserver`` serves them; in
production from ``STATIC_ROOT``, where ``collectstatic`` gathered them,
indexed once at startup. WhiteNoise decides which file a path names and
what its response says: its index accepts only canonical paths to files
it listed (no ``..``, no directories), and it gives the content type,
``Cache-Control`` (for ever for the hashed names of
``ManifestStaticFilesStorage``), ``ETag`` and ``Last-Modified``, the 304 to
a matching ``If-None-Match``, HEAD, ranges and pre-compressed ``.gz`` and
``.br`` files (``WHITENOISE_*`` settings apply). This module finds the
file for a request and writes WhiteNoise's answer a piece at a time, as
fast as the client reads it.

Only GET and HEAD without a body, for a path under ``STATIC_URL`` that
names a file, are answered here; anything else, a missing file included,
goes to the project's ``http.request`` consumer as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, BinaryIO

import h11
from django.apps import apps
from django.conf import settings
from django.core.exceptions import SuspiciousFileOperation
from whitenoise.middleware import WhiteNoiseMiddleware

from channels.messages.http import decode_path

if TYPE_CHECKING:
    from channels.interfaces.http_protocol import HttpProtocol
    from channels.interfaces.http_request import Request


# Bytes read from a file at a time; the next piece is read once the client
# has taken the one before (the outbox holds nothing).
PIECE_SIZE = 64 * 1024


class _WhiteNoiseSettings:
    """Django's settings, but for the switches this server decides:
    finders or STATIC_ROOT, and nothing outside STATIC_URL."""

    def __init__(self, finders: bool):
        self.overrides = {"WHITENOISE_USE_FINDERS": finders,
                          "WHITENOISE_AUTOREFRESH": finders,
                          "WHITENOISE_ROOT": None}

    def __getattr__(self, name: str) -> Any:
        if name in self.overrides:
            return self.overrides[name]
        return getattr(settings, name)


class StaticFiles:
    """The files under ``STATIC_URL``: from the staticfiles finders, looked
    up at each request (new files show without a restart), or from
    ``STATIC_ROOT``, listed at startup (restart after ``collectstatic``)."""

    def __init__(self, finders: bool):
        self.finders = finders
        self.whitenoise = WhiteNoiseMiddleware(settings=_WhiteNoiseSettings(finders))
        self.prefix: str = self.whitenoise.static_prefix

    @classmethod
    def from_settings(cls, finders: bool | None = None) -> tuple[StaticFiles | None, str]:
        """The files to serve, from the finders when ``finders`` is true
        (None: when ``DEBUG``), otherwise from ``STATIC_ROOT``; and a line
        that says what is served, or why nothing is."""
        if finders is None:
            finders = settings.DEBUG
        if finders:
            if not apps.is_installed("django.contrib.staticfiles"):
                return None, ("Static files: none served (django.contrib.staticfiles is "
                              "not installed).")
            served = cls(finders=True)
            return served, f"Static files at {served.prefix} from the staticfiles finders."
        root = settings.STATIC_ROOT
        if not root:
            return None, "Static files: none served (DEBUG is off and STATIC_ROOT is not set)."
        if not os.path.isdir(root):
            return None, (f"Static files: none served (STATIC_ROOT, {root}, is not a "
                          f"directory: run manage.py collectstatic).")
        served = cls(finders=False)
        return served, (f"Static files at {served.prefix} from STATIC_ROOT ({root}, "
                        f"{len(served.whitenoise.files)} files).")

    def find(self, event: h11.Request, root_path: str = "") -> Any:
        """WhiteNoise's file for this request, or None to hand it on."""
        if event.method not in (b"GET", b"HEAD"):
            return None
        path = decode_path(event.target.partition(b"?")[0])
        stripped = root_path.rstrip("/")
        if stripped and path.startswith(stripped + "/"):
            path = path[len(stripped):]
        if not path.startswith(self.prefix):
            return None
        whitenoise = self.whitenoise
        if not whitenoise.autorefresh:
            return whitenoise.files.get(path)
        try:
            return whitenoise.find_file(path)
        except (SuspiciousFileOperation, ValueError, OSError):
            # A name the finders refuse (outside their directories, a NUL
            # byte): no file, as for a missing one.
            return None


def request_headers(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers WhiteNoise reads, in WSGI's ``HTTP_*`` form."""
    return {"HTTP_" + name.decode("latin-1").upper().replace("-", "_"): value.decode("latin-1")
            for name, value in headers}


class StaticResponse:
    """One static file on its way to the client: WhiteNoise's status and
    headers, then the file a piece at a time, each piece read once the
    client has taken the one before, so a slow client costs one piece of
    memory and a fast one gets the file at the socket's speed."""

    @classmethod
    def open(cls, protocol: HttpProtocol, request: Request,
             static_file: Any) -> StaticResponse | None:
        """The response, its file open; None if the file went away since
        STATIC_ROOT was listed (then the request goes on, as for any
        missing file)."""
        try:
            response = static_file.get_response(request.event.method.decode(),
                                                request_headers(request.headers))
        except OSError:
            return None
        return cls(protocol, request, response)

    def __init__(self, protocol: HttpProtocol, request: Request, response: Any):
        self.protocol = protocol
        self.request = request
        self.status = int(response.status)
        self.reason = response.status.phrase.encode("latin-1")
        self.headers = [(name.encode("latin-1"), value.encode("latin-1"))
                        for name, value in response.headers]
        self.file: BinaryIO | None = response.file
        self.sent = 0

    def start(self) -> None:
        protocol = self.protocol
        protocol.cancel_timer()
        self.request.response_started = True
        protocol.write(h11.Response(status_code=self.status, headers=self.headers,
                                    reason=self.reason))
        self.send_more()

    def send_more(self) -> None:
        protocol = self.protocol
        while not self.request.done:
            piece = self.file.read(PIECE_SIZE) if self.file is not None else b""
            if not piece:
                self.close()
                protocol.write(h11.EndOfMessage())
                protocol.log_access(self.status, self.sent)
                protocol.outbox.when_sent(self.request.response_sent)
                return
            self.sent += len(piece)
            protocol.write(h11.Data(data=piece))
            if protocol.outbox.held:
                protocol.outbox.when_sent(self.send_more)
                return
        self.close()  # the client left, or was dropped

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None
