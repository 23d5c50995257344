"""Django's request handling, driven by ``http.request`` messages.

``http_consumer`` is the consumer of ``http.request`` unless a project
routes that channel itself: it runs the request through Django exactly as
the WSGI handler would (middleware, URL resolving, the view, error pages,
``request_started``/``request_finished``) and sends the response back to
the request's reply channel, cut into messages that fit the layer.

Settings, read at each request (and checked by ``manage.py check``):

``CHANNELS_HTTP_BODY_TIMEOUT`` (30)
    Seconds to wait for each further chunk of a request body before the
    request is abandoned (``RequestAborted``).
``CHANNELS_HTTP_SEND_TIMEOUT`` (30)
    Seconds to keep retrying a response message while the reply channel is
    full (a slow client); then the rest of the response is dropped.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers import base
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix
from django.utils.functional import cached_property

from channels.backends.base import BaseChannelBackend
from channels.channel import Channel
from channels.exceptions import ChannelFull
from channels.message import Message
from channels.messages.http import ABORT, BODY_CHUNK_SIZE
from channels.worker.request_body import request_body

logger = logging.getLogger("channels.handler")

# CGI variables that HTTP headers become without the HTTP_ prefix.
_UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}


# The HTTP side's timeout settings (this module's, channels.worker.views') and
# their defaults; channels.checks checks them.
HTTP_TIMEOUT_SETTINGS = {
    "CHANNELS_HTTP_BODY_TIMEOUT": 30,
    "CHANNELS_HTTP_SEND_TIMEOUT": 30,
    "CHANNELS_HTTP_RESPONSE_TIMEOUT": 60,
}


def http_setting(name: str) -> float:
    """One of HTTP_TIMEOUT_SETTINGS, or its default."""
    return getattr(settings, name, HTTP_TIMEOUT_SETTINGS[name])


def send_timeout() -> float:
    """``CHANNELS_HTTP_SEND_TIMEOUT``: see send_patiently."""
    return http_setting("CHANNELS_HTTP_SEND_TIMEOUT")


def _script_and_path(content: dict[str, Any]) -> tuple[str, str]:
    """SCRIPT_NAME and PATH_INFO: ``path`` is the whole path and includes
    ``root_path``, as a request target does."""
    path, root = content["path"], content.get("root_path") or ""
    stripped = root.rstrip("/")
    if stripped and (path == stripped or path.startswith(stripped + "/")):
        path = path[len(stripped):]
    script_name = settings.FORCE_SCRIPT_NAME
    return (root if script_name is None else script_name), path or "/"


class ChannelRequest(HttpRequest):
    """An ``HttpRequest`` built from an ``http.request`` message, with the
    same ``META`` a WSGI server would give Django.

    ``request.message`` is the message and ``request.reply_channel`` the
    channel the response goes to, for views that answer later themselves.
    """

    def __init__(self, message: Message):
        # Like WSGIRequest, sets every attribute itself: HttpRequest.__init__
        # would assign GET and FILES, which are computed here.
        content = message.content
        self.message = message
        self.reply_channel = message.reply_channel
        script_name, path_info = _script_and_path(content)
        self.path_info = path_info
        self.path = "{}/{}".format(script_name.rstrip("/"), path_info.replace("/", "", 1))
        self.method = content["method"].upper()
        self.META = self._meta(content, script_name, path_info)
        self._set_content_type_params(self.META)
        self._stream = request_body(
            content["body"], content.get("body_channel"), message.channel_backend,
            http_setting("CHANNELS_HTTP_BODY_TIMEOUT"),
        )
        self._read_started = False
        self.resolver_match = None

    @staticmethod
    def _meta(content: dict[str, Any], script_name: str, path_info: str) -> dict[str, Any]:
        client = content.get("client") or ["", 0]
        server = content.get("server") or ["unknown", 0]
        meta = {
            "REQUEST_METHOD": content["method"].upper(),
            "QUERY_STRING": content.get("query_string", ""),
            "SCRIPT_NAME": script_name,
            "PATH_INFO": path_info,
            "SERVER_PROTOCOL": "HTTP/{}".format(content.get("http_version", "1.1")),
            "REMOTE_ADDR": client[0],
            "REMOTE_HOST": client[0],
            "REMOTE_PORT": str(client[1]),
            "SERVER_NAME": server[0],
            "SERVER_PORT": str(server[1]),
            "wsgi.url_scheme": content.get("scheme", "http"),
        }
        for name, value in content.get("headers", ()):
            if "_" in name:
                # As WSGI servers do: "X_Auth" would otherwise pose as "X-Auth".
                continue
            key = name.upper().replace("-", "_")
            if key not in _UNPREFIXED:
                key = "HTTP_" + key
            meta[key] = f"{meta[key]},{value}" if key in meta else value
        return meta

    def _get_scheme(self) -> str:
        return self.META["wsgi.url_scheme"]

    @cached_property
    def GET(self) -> QueryDict:
        return QueryDict(self.META["QUERY_STRING"].encode("latin-1"), encoding=self._encoding)

    @cached_property
    def COOKIES(self) -> dict[str, str]:
        return dict(self.message.get("cookies") or {})

    def _get_post(self) -> QueryDict:
        if not hasattr(self, "_post"):
            self._load_post_and_files()
        return self._post

    def _set_post(self, post: QueryDict) -> None:
        self._post = post

    POST = property(_get_post, _set_post)

    @property
    def FILES(self):
        if not hasattr(self, "_files"):
            self._load_post_and_files()
        return self._files


def response_messages(response: HttpResponseBase) -> Iterator[dict[str, Any]]:
    """The reply channel messages of a Django response: status and headers
    first, content in chunks of at most ``BODY_CHUNK_SIZE``.

    A streaming response (``StreamingHttpResponse``, ``FileResponse``) sends
    its headers at once and each piece as the iterator yields it, so a
    client sees a stream progress; a file is read a whole chunk at a time.
    """
    start = {
        "status": response.status_code,
        "reason": response.reason_phrase,
        "headers": [[name, value] for name, value in response.items()]
        + [["Set-Cookie", morsel.OutputString()] for morsel in response.cookies.values()],
    }
    if not response.streaming:
        content = response.content
        if len(content) <= BODY_CHUNK_SIZE:
            yield {**start, "content": content, "more_content": False}
            return
        yield {**start, "content": content[:BODY_CHUNK_SIZE], "more_content": True}
        for offset in range(BODY_CHUNK_SIZE, len(content), BODY_CHUNK_SIZE):
            last = offset + BODY_CHUNK_SIZE >= len(content)
            yield {"content": content[offset:offset + BODY_CHUNK_SIZE], "more_content": not last}
        return
    if getattr(response, "file_to_stream", None) is not None:
        # Read lazily by FileResponse's iterator: 4 KiB reads would make
        # 128 messages of every chunk.
        response.block_size = BODY_CHUNK_SIZE
    yield {**start, "content": b"", "more_content": True}
    for piece in response.streaming_content:
        for offset in range(0, len(piece), BODY_CHUNK_SIZE):
            yield {"content": bytes(piece[offset:offset + BODY_CHUNK_SIZE]),
                   "more_content": True}
    yield {"content": b"", "more_content": False}


def send_patiently(backend: BaseChannelBackend, channel: str, content: dict[str, Any],
                   timeout: float) -> None:
    """Send, retrying for up to ``timeout`` seconds while ``channel`` is full.

    For the channels of one request (its body, its response), which drain
    only as fast as the other end reads: a slow reader must cost time, not
    the request. Raises ChannelFull when the time is up."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            backend.send(channel, content)
            return
        except ChannelFull:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)


def send_response(reply_channel: Channel, response: HttpResponseBase) -> None:
    """Send ``response`` to ``reply_channel``, then close it (which closes its
    files and sends ``request_finished``)."""
    timeout = send_timeout()
    backend, name = reply_channel.channel_backend, reply_channel.name
    started = False
    try:
        for content in response_messages(response):
            send_patiently(backend, name, content, timeout)
            started = True
    except ChannelFull:
        logger.warning("Reply channel %r stayed full for %s s; response dropped",
                       name, timeout)
    except Exception:
        if started:
            # A streaming response's iterator raised: cut the response off
            # now rather than leave the client waiting for the next chunk.
            try:
                backend.send(name, ABORT)
            except Exception:
                logger.warning("Could not abort the response on %r", name, exc_info=True)
        raise
    finally:
        response.close()


class ChannelHandler(base.BaseHandler):
    """Runs ``http.request`` messages through Django's request handling."""

    request_class = ChannelRequest

    def __init__(self):
        super().__init__()
        self.load_middleware()

    def __call__(self, message: Message) -> None:
        if message.reply_channel is None:
            logger.warning("http.request without a reply_channel; dropped")
            return
        signals.request_started.send(sender=self.__class__, message=message)
        try:
            request = self.request_class(message)
            set_script_prefix(request.META["SCRIPT_NAME"])
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            # A malformed message answers 400 and costs nothing else.
            logger.warning("Malformed http.request message: %r", exc)
            response = HttpResponseBadRequest()
        else:
            response = self.get_response(request)
        response._handler_class = self.__class__
        send_response(message.reply_channel, response)


_handler: ChannelHandler | None = None


def http_consumer(message: Message) -> None:
    """The default consumer of ``http.request``: Django's full handler."""
    global _handler
    if _handler is None:
        # Built at first use (middleware loads settings), once per process.
        _handler = ChannelHandler()
    _handler(message)


def _reset_handler(**kwargs: object) -> None:
    # Middleware reads settings when it is built (SessionMiddleware its
    # SESSION_ENGINE, for one): after any change (override_settings), build
    # the handler again.
    global _handler
    _handler = None


setting_changed.connect(_reset_handler)
