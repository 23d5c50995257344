"""A WSGI application that makes any WSGI server an HTTP interface server.

Run it with gunicorn (threads let one process wait on many responses)::

    DJANGO_SETTINGS_MODULE=mysite.settings \\
        gunicorn --workers 2 --threads 8 --bind 127.0.0.1:8001 \\
        channels.interfaces.wsgi:application

Each request becomes an ``http.request`` message (its body, if large,
following in chunks as it is read from the client); the views run in
``runworker`` processes; the response comes back on a reply channel and is
streamed to the client chunk by chunk. No view runs in the WSGI process.

One thread per process receives the responses of all its requests at once
(``channels.replies``): a waiting request costs a queue, not a blocking
receive of its own.

Answers it gives itself: 400 for a Host not in ``ALLOWED_HOSTS`` (checked as
Django checks it, before anything is sent), 503 with ``Retry-After`` when
``http.request`` is full or the channel layer cannot be reached, 504 when no
response starts within the HTTP timeout, 500 for a malformed response.

Settings: ``CHANNELS_SERVER["HTTP_TIMEOUT"]`` (60 s, as for ``runwsserver``)
bounds the wait for a response to start and for each further chunk;
``CHANNELS_WSGI_BACKEND`` names the channel backend alias (``"default"``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple
from urllib.parse import quote

import django
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest
from django.core.signals import setting_changed

from channels.backends import channel_backends
from channels.backends.base import BaseChannelBackend
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.interfaces.config import ServerConfig
from channels.messages.http import (
    BODY_CHUNK_SIZE,
    MalformedResponse,
    closed_body_message,
    request_message,
    split_stream,
)
from channels.names import HTTP_BODY_PREFIX, new_name
from channels.replies import PendingResponse
from channels.worker.sending import send_patiently, send_timeout

logger = logging.getLogger("channels.interfaces.wsgi")

StartResponse = Callable[..., Any]


def _plain(status: str, text: str, start_response: StartResponse,
           extra: Iterable[tuple[str, str]] = ()) -> list[bytes]:
    body = text.encode() + b"\n"
    start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                            ("Content-Length", str(len(body))), *extra])
    return [body]


def _environ_headers(environ: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    headers = []
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            name = key[5:]
        elif key in ("CONTENT_TYPE", "CONTENT_LENGTH") and value:
            name = key
        else:
            continue
        headers.append((name.replace("_", "-").lower().encode("latin-1"),
                        value.encode("latin-1")))
    return headers


def _target(environ: dict[str, Any]) -> bytes:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw.encode("latin-1")
    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    target = quote(path, safe="/:@!$&'()*+,;=-._~%").encode()
    query = environ.get("QUERY_STRING", "")
    return target + b"?" + query.encode("latin-1") if query else target


def _body_pieces(environ: dict[str, Any]) -> Iterator[bytes]:
    stream = environ["wsgi.input"]
    try:
        remaining = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        remaining = 0
    chunked = environ.get("HTTP_TRANSFER_ENCODING", "").lower() == "chunked"
    while chunked or remaining > 0:
        piece = stream.read(BODY_CHUNK_SIZE if chunked else min(remaining, BODY_CHUNK_SIZE))
        if not piece:
            return
        remaining -= len(piece)
        yield piece


class WSGIAdapter:
    """The WSGI application (see the module docstring). ``alias`` pins it
    to one channel backend; without it, ``CHANNELS_WSGI_BACKEND`` is read
    at each request, so that a change (``override_settings`` in tests)
    applies to the module-level ``application`` too."""

    def __init__(self, alias: str | None = None):
        self._alias = alias
        self._timeout: float | None = None
        setting_changed.connect(self._settings_changed, weak=True)

    def _settings_changed(self, *, setting: str, **kwargs: Any) -> None:
        if setting == "CHANNELS_SERVER":
            self._timeout = None

    @property
    def backend(self) -> BaseChannelBackend:
        alias = self._alias or getattr(settings, "CHANNELS_WSGI_BACKEND", "default")
        return channel_backends[alias]

    @property
    def timeout(self) -> float:
        # The same setting, default and checks as runwsserver's; read at
        # first use.
        if self._timeout is None:
            self._timeout = ServerConfig.from_settings().http_timeout
        return self._timeout

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            # A copy: WSGIRequest rewrites PATH_INFO and SCRIPT_NAME in place.
            WSGIRequest({**environ}).get_host()
        except DisallowedHost as exc:
            logger.warning("Refused request: %s", exc)
            return _plain("400 Bad Request", "Bad Request: Host not allowed", start_response)
        backend = self.backend
        response = PendingResponse(backend, self.timeout, environ.get("PATH_INFO", "/"))
        try:
            refused = self._send_request(backend, environ, response.reply_channel)
            if refused is not None:
                # A worker may have the request already: it hears that the
                # client is gone.
                response.close(disconnect=refused.reached)
                return _plain("503 Service Unavailable",
                              f"Service Unavailable: {refused.reason}",
                              start_response, [("Retry-After", "1")])
            start = response.wait_start()
        except MalformedResponse as exc:
            response.close()
            logger.error("Malformed response on %r: %s", response.reply_channel, exc)
            return _plain("500 Internal Server Error", "Internal Server Error", start_response)
        except BaseException:
            response.close()
            raise
        if start is None:
            response.close()
            return _plain("504 Gateway Timeout", f"No response within {self.timeout} s",
                          start_response)
        start_response(f"{start.status} {start.reason}",
                       [(name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in start.headers])
        # Iterated and closed by the WSGI server (close() even if the client
        # left before the first chunk).
        return response

    def _send_request(self, backend: BaseChannelBackend, environ: dict[str, Any],
                      reply_channel: str) -> _Refusal | None:
        """Send the request and its body; why to answer 503, or None."""
        first, rest = split_stream(_body_pieces(environ))
        body_channel = None if rest is None else new_name(HTTP_BODY_PREFIX)
        message = request_message(
            _target(environ), _environ_headers(environ),
            (environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")),
            (environ.get("SERVER_NAME"), environ.get("SERVER_PORT")),
            environ.get("wsgi.url_scheme", "http"),
            reply_channel=reply_channel, method=environ["REQUEST_METHOD"],
            http_version=environ.get("SERVER_PROTOCOL", "HTTP/1.1").rpartition("/")[2],
            body=first, body_channel=body_channel, root_path=environ.get("SCRIPT_NAME", ""),
        )
        try:
            backend.send("http.request", message)
        except ChannelFull:
            return _Refusal("too many requests waiting", reached=False)
        except ChannelBackendUnavailable:
            logger.exception("Channel backend %r unavailable", backend.alias)
            return _Refusal("the channel layer cannot be reached", reached=False)
        if rest is not None:
            return self._send_body(backend, body_channel, rest)
        return None

    def _send_body(self, backend: BaseChannelBackend, body_channel: str,
                   messages: Iterator[dict[str, Any]]) -> _Refusal | None:
        try:
            for message in messages:
                send_patiently(backend, body_channel, message, send_timeout())
        except (OSError, ValueError) as exc:
            # The client went away mid-upload (or sent a broken chunk).
            logger.info("Upload to %r ended early: %s", body_channel, exc)
            _close_body(backend, body_channel)
        except (ChannelFull, ChannelBackendUnavailable) as exc:
            # The view stopped reading (or Redis went away): the request
            # cannot go on, and the client may try again.
            logger.warning("Could not deliver the body on %r: %s", body_channel, exc)
            _close_body(backend, body_channel)
            return _Refusal("the request body could not be delivered", reached=True)
        return None


class _Refusal(NamedTuple):
    """Why the adapter answers 503 itself, and whether a worker may have
    the request already."""

    reason: str
    reached: bool


def _close_body(backend: BaseChannelBackend, body_channel: str) -> None:
    """Tell the view that no more body is coming, if the channel takes it."""
    try:
        backend.send(body_channel, closed_body_message())
    except (ChannelFull, ChannelBackendUnavailable):
        logger.debug("Could not close the body on %r", body_channel, exc_info=True)


def get_wsgi_application(alias: str | None = None) -> WSGIAdapter:
    """Set Django up (as ``django.core.wsgi.get_wsgi_application`` does) and
    return the adapter."""
    django.setup(set_prefix=False)
    return WSGIAdapter(alias)


#: What a WSGI server loads (``channels.interfaces.wsgi:application``): an
#: adapter on ``CHANNELS_WSGI_BACKEND``, built with Django set up at import so
#: that the server needs no project module of its own.
application = get_wsgi_application()
