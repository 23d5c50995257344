"""A WSGI application that makes any WSGI server an HTTP interface server.

Run it with gunicorn (threads let one process wait on many responses)::

    DJANGO_SETTINGS_MODULE=mysite.settings \\
        gunicorn --workers 2 --threads 8 --bind 127.0.0.1:8001 \\
        channels.interfaces.wsgi:application

Each request becomes an ``http.request`` message (its body, if large,
following in chunks as it is read from the client); the views run in
``runworker`` processes; the response comes back on a reply channel and is
streamed to the client chunk by chunk. No view runs in the WSGI process.

One thread per process receives the responses of all its requests at once,
on the process wildcard of its reply channels, and hands each to the request
waiting for it: a request costs a queue, not a blocking receive of its own.

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
import os
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain
from typing import Any

import django
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.wsgi import WSGIRequest

from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.handler import send_patiently, send_timeout
from channels.interfaces.http_messages import (
    BODY_CHUNK_SIZE,
    MalformedResponse,
    body_messages,
    closed_body_message,
    disconnect_message,
    request_message,
    response_chunk,
    response_start,
)
from channels.names import new_name, process_wildcard

logger = logging.getLogger("channels.interfaces.wsgi")

REPLY_PREFIX = "!http.response"
# How long the receiver blocks per call; it also bounds how long a receiver
# that lost the backend waits before it tries again.
RECEIVE_TIMEOUT = 1.0

StartResponse = Callable[..., Any]


class ResponseIncomplete(Exception):
    """The response stopped before its last chunk. Raised into the WSGI
    server so that it drops the connection instead of ending the response
    as if it were whole."""


class ReplyReceiver:
    """Receives every response for this process on its reply channels'
    process wildcard and hands each to the request waiting for it.

    Started by the first request of each process (after gunicorn forks, not
    before: a thread does not survive a fork, and the wildcard is per
    process).
    """

    def __init__(self, backend):
        self.backend = backend
        self._waiting: dict[str, queue.SimpleQueue] = {}
        self._lock = threading.Lock()
        self._pid = None

    def register(self, reply_channel: str) -> queue.SimpleQueue:
        inbox: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            self._waiting[reply_channel] = inbox
            if self._pid != os.getpid():
                self._pid = os.getpid()
                threading.Thread(target=self._run, args=(process_wildcard(REPLY_PREFIX),),
                                 name="channels-wsgi-replies", daemon=True).start()
        return inbox

    def stop(self) -> None:
        """End the thread (within RECEIVE_TIMEOUT)."""
        self._pid = None

    def unregister(self, reply_channel: str) -> None:
        with self._lock:
            self._waiting.pop(reply_channel, None)

    def _run(self, wildcard: str) -> None:
        pid = os.getpid()
        stop = threading.Event()
        while self._pid == pid:
            try:
                batch = self.backend.receive_batch([wildcard], limit=100,
                                                   timeout=RECEIVE_TIMEOUT)
            except Exception:
                logger.exception("Cannot receive responses from channel backend %r",
                                 self.backend.alias)
                stop.wait(RECEIVE_TIMEOUT)
                continue
            for channel, message in batch:
                inbox = self._waiting.get(channel)
                if inbox is not None:
                    inbox.put(message)
                # Else its request gave up (timed out, client left): dropped.


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
    from urllib.parse import quote

    path = (environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")).encode("latin-1")
    target = quote(path, safe="/:@!$&'()*+,;=-._~%").encode()
    query = environ.get("QUERY_STRING", "")
    return target + b"?" + query.encode("latin-1") if query else target


def _address(host: str | None, port: str | None) -> tuple[str, int] | None:
    return (host, int(port or 0)) if host else None


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
    """The WSGI application; see the module docstring."""

    def __init__(self, alias: str | None = None):
        self._alias = alias
        self._receiver: ReplyReceiver | None = None
        self._receiver_lock = threading.Lock()

    @property
    def backend(self):
        from channels.backends import channel_backends

        alias = self._alias or getattr(settings, "CHANNELS_WSGI_BACKEND", "default")
        return channel_backends[alias]

    @property
    def timeout(self) -> float:
        server = getattr(settings, "CHANNELS_SERVER", None) or {}
        return server.get("HTTP_TIMEOUT", 60.0)

    def receiver(self, backend) -> ReplyReceiver:
        with self._receiver_lock:
            if self._receiver is None or self._receiver.backend is not backend:
                if self._receiver is not None:
                    self._receiver.stop()
                self._receiver = ReplyReceiver(backend)
            return self._receiver

    def close(self) -> None:
        """Stop receiving responses (tests; a WSGI server just exits)."""
        with self._receiver_lock:
            if self._receiver is not None:
                self._receiver.stop()
                self._receiver = None

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            WSGIRequest(environ).get_host()
        except DisallowedHost as exc:
            logger.warning("Refused request: %s", exc)
            return _plain("400 Bad Request", "Bad Request: Host not allowed", start_response)
        backend = self.backend
        receiver = self.receiver(backend)
        reply_channel = new_name(REPLY_PREFIX)
        inbox = receiver.register(reply_channel)
        try:
            refused = self._send_request(backend, environ, reply_channel)
        except BaseException:
            receiver.unregister(reply_channel)
            raise
        if refused is not None:
            receiver.unregister(reply_channel)
            return _plain("503 Service Unavailable", f"Service Unavailable: {refused}",
                          start_response, [("Retry-After", "1")])
        return self._respond(backend, receiver, inbox, reply_channel, environ, start_response)

    def _send_request(self, backend, environ: dict[str, Any], reply_channel: str) -> str | None:
        """Send the request and its body; a reason to answer 503, or None."""
        pieces = _body_pieces(environ)
        first, second = next(pieces, b""), next(pieces, b"")
        body_channel = new_name("http.request.body") if second else None
        message = request_message(
            _target(environ), _environ_headers(environ),
            _address(environ.get("REMOTE_ADDR"), environ.get("REMOTE_PORT")),
            _address(environ.get("SERVER_NAME"), environ.get("SERVER_PORT")),
            environ.get("wsgi.url_scheme", "http"),
            reply_channel=reply_channel, method=environ["REQUEST_METHOD"],
            http_version=environ.get("SERVER_PROTOCOL", "HTTP/1.1").rpartition("/")[2],
            body=first, body_channel=body_channel, root_path=environ.get("SCRIPT_NAME", ""),
        )
        try:
            backend.send("http.request", message)
        except ChannelFull:
            return "too many requests waiting"
        except ChannelBackendUnavailable:
            logger.exception("Channel backend %r unavailable", backend.alias)
            return "the channel layer cannot be reached"
        if body_channel is not None:
            self._send_body(backend, body_channel, chain([second], pieces))
        return None

    def _send_body(self, backend, body_channel: str, pieces: Iterator[bytes]) -> None:
        try:
            for message in body_messages(pieces):
                send_patiently(backend, body_channel, message, send_timeout())
        except (OSError, ValueError) as exc:
            # The client went away mid-upload (or sent a broken chunk).
            logger.info("Upload to %r ended early: %s", body_channel, exc)
            backend.send(body_channel, closed_body_message())

    def _respond(self, backend, receiver: ReplyReceiver, inbox: queue.SimpleQueue,
                 reply_channel: str, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        timeout = self.timeout
        try:
            message = inbox.get(timeout=timeout)
        except queue.Empty:
            receiver.unregister(reply_channel)
            return _plain("504 Gateway Timeout", f"No response within {timeout} s",
                          start_response)
        try:
            start = response_start(message)
        except MalformedResponse as exc:
            receiver.unregister(reply_channel)
            logger.error("Malformed response on %r: %s", reply_channel, exc)
            return _plain("500 Internal Server Error", "Internal Server Error", start_response)
        start_response(f"{start.status} {start.reason}",
                       [(name.decode("latin-1"), value.decode("latin-1"))
                        for name, value in start.headers])
        return _ResponseBody(backend, receiver, inbox, reply_channel,
                             environ.get("PATH_INFO", "/"), start, timeout)


class _ResponseBody:
    """The content of a response as the WSGI server iterates it. A class, not
    a generator, because the server calls ``close()`` even when it never
    started iterating (the client left), and that must still unregister."""

    def __init__(self, backend, receiver: ReplyReceiver, inbox: queue.SimpleQueue,
                 reply_channel: str, path: str, start, timeout: float):
        self.backend, self.receiver, self.inbox = backend, receiver, inbox
        self.reply_channel, self.path, self.start, self.timeout = (
            reply_channel, path, start, timeout)
        self.finished = False

    def __iter__(self) -> Iterator[bytes]:
        if self.start.content:
            yield self.start.content
        more = self.start.more_content
        while more:
            try:
                chunk = response_chunk(self.inbox.get(timeout=self.timeout))
            except queue.Empty:
                raise ResponseIncomplete(
                    f"No chunk on {self.reply_channel!r} within {self.timeout} s")
            except MalformedResponse as exc:
                raise ResponseIncomplete(f"Malformed chunk on {self.reply_channel!r}: {exc}")
            more = chunk.more_content
            if chunk.content:
                yield chunk.content
        self.finished = True

    def close(self) -> None:
        self.receiver.unregister(self.reply_channel)
        if not self.finished:
            # The client left, or the response broke: tell whoever may care.
            try:
                self.backend.send("http.disconnect",
                                  disconnect_message(self.reply_channel, self.path))
            except Exception:
                logger.debug("Could not send http.disconnect", exc_info=True)


def get_wsgi_application(alias: str | None = None) -> WSGIAdapter:
    """Set Django up (as ``django.core.wsgi.get_wsgi_application`` does) and
    return the adapter."""
    django.setup(set_prefix=False)
    return WSGIAdapter(alias)


application = get_wsgi_application()
