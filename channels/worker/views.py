"""A view that hands its request to a channel.

``channel_view(channel)`` (also ``Channel(name).as_view()``) is a view that
hands its request to whatever consumer listens on a channel, in any worker,
and returns the response that consumer sends: a slow or specialised piece
of work moves out of the web process without changing its URL.
``channels.worker.handler.view_consumer(view)`` makes such a consumer of a
plain Django view.

The view only sends and receives messages; it needs neither ``Message``
nor the handler, and imports nothing that imports ``channels.channel``,
which is what lets ``Channel.as_view`` hand out this view with the
modules' dependencies pointing one way. ``CHANNELS_HTTP_RESPONSE_TIMEOUT``
(see ``channels.worker.sending``) bounds its wait for each part of the
response.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from http.cookies import CookieError
from typing import TYPE_CHECKING

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.http.response import HttpResponseBase
from django.utils.encoding import escape_uri_path

from channels.exceptions import ChannelBackendUnavailable, ChannelFull
from channels.messages.http import (
    BODY_CHUNK_SIZE,
    MalformedResponse,
    ResponseStart,
    request_message,
    split_stream,
)
from channels.names import HTTP_BODY_PREFIX, new_name
from channels.replies import PendingResponse
from channels.worker.sending import http_setting, send_patiently, send_timeout

if TYPE_CHECKING:
    from channels.channel import Channel

logger = logging.getLogger("channels.views")

View = Callable[..., HttpResponseBase]


def _response_timeout() -> float:
    return http_setting("CHANNELS_HTTP_RESPONSE_TIMEOUT")


def _body_pieces(request: HttpRequest) -> Iterator[bytes]:
    if hasattr(request, "_body"):
        yield request.body  # already read (by a middleware, say)
        return
    while piece := request.read(BODY_CHUNK_SIZE):
        yield piece


def _request_message(request: HttpRequest, reply_channel: str, first: bytes,
                     body_channel: str | None) -> dict:
    meta = request.META
    target = escape_uri_path(request.path).encode()
    if meta.get("QUERY_STRING"):
        target += b"?" + meta["QUERY_STRING"].encode("latin-1")
    headers = [(name.encode("latin-1"), value.encode("latin-1", "replace"))
               for name, value in request.headers.items()]
    return request_message(
        target, headers,
        (meta.get("REMOTE_ADDR"), meta.get("REMOTE_PORT")),
        (meta.get("SERVER_NAME"), meta.get("SERVER_PORT")),
        request.scheme,
        reply_channel=reply_channel, method=request.method,
        http_version=meta.get("SERVER_PROTOCOL", "HTTP/1.1").rpartition("/")[2] or "1.1",
        body=first, body_channel=body_channel, root_path=meta.get("SCRIPT_NAME", ""),
    )


def _unavailable(reason: str) -> HttpResponse:
    response = HttpResponse(f"Service unavailable: {reason}\n", status=503,
                            content_type="text/plain")
    response["Retry-After"] = "1"
    return response


def django_response(start: ResponseStart,
                    content: Iterable[bytes] | None = None) -> HttpResponseBase:
    """A Django response from a first response message: with its own
    content, or streaming ``content`` (all of it, first chunk included)."""
    if content is None:
        response = HttpResponse(start.content, status=start.status, reason=start.reason)
    else:
        response = StreamingHttpResponse(content, status=start.status, reason=start.reason)
    del response["Content-Type"]  # only what the consumer sent
    for raw_name, raw_value in start.headers:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        if name.lower() == "set-cookie":
            try:
                response.cookies.load(value)
            except CookieError:
                logger.warning("Dropped an unparseable Set-Cookie header: %r", value)
        elif name in response:
            response[name] = f"{response[name]}, {value}"
        else:
            response[name] = value
    return response


def channel_view(channel: Channel) -> View:
    """A view that sends each request onto ``channel`` and returns the
    response a consumer sends to the request's reply channel (streamed if it
    comes in chunks). A full channel or an unreachable backend answers 503
    with ``Retry-After``; no response in time answers 504.

    Don't point it at a channel that only the worker running this view
    consumes: that worker would be waiting on itself.
    """

    def view(request: HttpRequest) -> HttpResponseBase:
        backend = channel.channel_backend
        response = PendingResponse(backend, _response_timeout(), request.path)
        first, rest = split_stream(_body_pieces(request))
        body_channel = None if rest is None else new_name(HTTP_BODY_PREFIX)
        try:
            try:
                # At once, even from a consumer: this view waits for the answer.
                channel.send(_request_message(request, response.reply_channel, first,
                                              body_channel), immediately=True)
            except ChannelFull:
                response.close(disconnect=False)
                return _unavailable(f"channel {channel.name} is full")
            except ChannelBackendUnavailable:
                response.close(disconnect=False)
                return _unavailable("the channel layer cannot be reached")
            if rest is not None:
                for message in rest:
                    send_patiently(backend, body_channel, message, send_timeout())
            start = response.wait_start()
        except MalformedResponse as exc:
            response.close()
            logger.error("Malformed response from channel %r: %s", channel.name, exc)
            return HttpResponse("Malformed response\n", status=500, content_type="text/plain")
        except BaseException:
            response.close()
            raise
        if start is None:
            response.close()
            return HttpResponse(
                f"No response from channel {channel.name} in {response.timeout} s\n",
                status=504, content_type="text/plain")
        if not start.more_content:
            response.close()
            return django_response(start)
        # Django closes the iterable (unregistering it) when the response ends.
        return django_response(start, response)

    view.channel = channel
    return view
