"""Django's request handling, driven by ``http.request`` messages.

``http_consumer`` is the consumer of ``http.request`` unless a project
routes that channel itself: it runs the request through Django exactly as
the WSGI handler would (middleware, URL resolving, the view, error pages,
``request_started``/``request_finished``) and sends the response back to
the request's reply channel, cut into messages that fit the layer.
``view_consumer(view)`` is a consumer that answers with one view alone.

The timeouts (``CHANNELS_HTTP_BODY_TIMEOUT``, ``CHANNELS_HTTP_SEND_TIMEOUT``)
are described in ``channels.worker.sending``.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.conf import settings
from django.core import signals
from django.core.handlers import base
from django.core.handlers.exception import convert_exception_to_response
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponseBadRequest, QueryDict
from django.http.response import HttpResponseBase
from django.urls import set_script_prefix
from django.utils.functional import cached_property

from channels.channel import Channel
from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.message import Message
from channels.messages.http import (
    ABORT,
    BODY_CHUNK_SIZE,
    response_messages,
    streamed_response_messages,
)
from channels.worker.request_body import request_body
from channels.worker.sending import http_setting, send_patiently, send_timeout

logger = logging.getLogger("channels.handler")

# CGI variables that HTTP headers become without the HTTP_ prefix.
_UNPREFIXED = {"CONTENT_TYPE", "CONTENT_LENGTH"}

View = Callable[..., HttpResponseBase]


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


def messages_of(response: HttpResponseBase) -> Iterator[dict[str, Any]]:
    """The reply channel messages of a Django response. A streaming response
    (``StreamingHttpResponse``, ``FileResponse``) sends its headers at once
    and each piece as the iterator yields it, so a client sees a stream
    progress; a file is read a whole chunk at a time."""
    headers = [[name, value] for name, value in response.items()]
    headers += [["Set-Cookie", morsel.OutputString()] for morsel in response.cookies.values()]
    if not response.streaming:
        return response_messages(response.status_code, headers, response.content,
                                 reason=response.reason_phrase)
    if getattr(response, "file_to_stream", None) is not None:
        # Read lazily by FileResponse's iterator: 4 KiB reads would make
        # 128 messages of every chunk.
        response.block_size = BODY_CHUNK_SIZE
    return streamed_response_messages(response.status_code, headers,
                                      response.streaming_content,
                                      reason=response.reason_phrase)


def send_response(reply_channel: Channel, response: HttpResponseBase) -> None:
    """Send ``response`` to ``reply_channel``, then close it (which closes its
    files and sends ``request_finished``).

    A response that fits in one message goes with the other replies of the
    worker's batch (``channels.backends.outgoing``): its reply channel is
    new and empty, so it cannot be full. One in several messages is sent as
    it goes, waiting while the client reads slower than the view writes."""
    timeout = send_timeout()
    backend, name = reply_channel.channel_backend, reply_channel.name
    started = False
    try:
        for content in messages_of(response):
            if not started and content.get("more_content") is False:
                backend.send(name, content)
            else:
                send_patiently(backend, name, content, timeout)
            started = True
    except ChannelFull:
        logger.warning("Reply channel %r stayed full for %s s; response dropped",
                       name, timeout)
    except ChannelBackendUnavailable:
        raise  # the reply channel's store is out of reach: nothing more can go
    except Exception:
        if started:
            # A streaming response's iterator raised: cut the response off
            # now rather than leave the client waiting for the next chunk.
            try:
                backend.send(name, ABORT, immediately=True)
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


def view_consumer(view: View) -> Callable[[Message], None]:
    """A consumer that answers ``http.request`` messages with ``view``,
    without middleware or URL resolving: the view gets a ``ChannelRequest``
    and its exceptions give Django's error pages."""
    handle = convert_exception_to_response(view)

    @functools.wraps(view)
    def consumer(message: Message) -> None:
        signals.request_started.send(sender=consumer, message=message)
        response = handle(ChannelRequest(message))
        if callable(getattr(response, "render", None)):
            response = response.render()  # a TemplateResponse
        send_response(message.reply_channel, response)

    return consumer


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

