"""Views and URLs that the HTTP tests (handler, views, WSGI adapter) request."""

import hashlib
import json
import os
import tempfile
import time

from django.core.exceptions import PermissionDenied
from django.core.signals import request_started
from django.db import close_old_connections
from django.http import FileResponse, HttpResponse, JsonResponse, StreamingHttpResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt

from channels import Channel
from channels.worker.handler import view_consumer

BIG_SIZE = 1536 * 1024  # over the 1 MiB message limit


def hello(request):
    return HttpResponse("Hello, world")


def meta(request):
    return JsonResponse({
        "method": request.method,
        "path": request.path,
        "path_info": request.path_info,
        "scheme": request.scheme,
        "host": request.get_host(),
        "uri": request.build_absolute_uri(),
        "GET": {key: request.GET.getlist(key) for key in request.GET},
        "COOKIES": request.COOKIES,
        "remote": request.META.get("REMOTE_ADDR"),
        "protocol": request.META.get("SERVER_PROTOCOL"),
        "agent": request.headers.get("User-Agent"),
        "accept": request.META.get("HTTP_ACCEPT"),
        "spoof": request.META.get("HTTP_X_SPOOF"),
    })


@csrf_exempt
def form(request):
    return JsonResponse({
        "POST": {key: request.POST.getlist(key) for key in request.POST},
        "FILES": {
            key: [upload.name, upload.size, hashlib.sha256(upload.read()).hexdigest()]
            for key, upload in request.FILES.items()
        },
    })


@csrf_exempt
def raw(request):
    body = request.body
    return JsonResponse({"length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
                         "content_type": request.content_type})


def session(request):
    request.session["count"] = request.session.get("count", 0) + 1
    response = HttpResponse(str(request.session["count"]))
    response.set_cookie("flavour", "oat", httponly=True)
    return response


def fail(request):
    raise ValueError("view broke")


def forbidden(request):
    raise PermissionDenied


def stream(request):
    return StreamingHttpResponse(
        (f"part {n}\n".encode() for n in range(3)), content_type="text/plain"
    )


def broken_stream(request):
    def parts():
        yield b"fine so far\n"
        raise ValueError("stream broke")

    return StreamingHttpResponse(parts())


def slow_stream(request):
    """A stream whose second part comes 0.5 s after the first."""
    def parts():
        yield b"first\n"
        time.sleep(0.5)
        yield b"second\n"

    return StreamingHttpResponse(parts(), content_type="text/plain")


def big(request):
    return HttpResponse(bytes(range(256)) * (BIG_SIZE // 256), content_type="application/x-big")


def file(request):
    handle = tempfile.TemporaryFile()
    handle.write(os.urandom(BIG_SIZE))
    handle.seek(0)
    return FileResponse(handle, filename="data.bin")


def live_receivers(signal):
    sync_receivers, async_receivers = signal._live_receivers(None)
    return [*sync_receivers, *async_receivers]


def closes_connections(request):
    """Whether request_started would close database connections now."""
    return HttpResponse(str(close_old_connections in live_receivers(request_started)))


def echo_path(request, rest):
    return JsonResponse({"path": request.path, "rest": rest})


def status(request):
    response = HttpResponse(json.dumps("teapot"), status=418)
    response["X-Multi"] = "one"
    return response


def behind_channel(request):
    """What the consumer of ``tests.view`` answers, by ``?do=``."""
    action = request.GET.get("do")
    if action == "fail":
        raise ValueError("consumer view broke")
    if action == "stream":
        return StreamingHttpResponse(iter([b"one,", b"two,", b"three"]))
    body = request.body
    response = JsonResponse({
        "method": request.method, "path": request.path, "GET": request.GET.getlist("x"),
        "length": len(body), "sha256": hashlib.sha256(body).hexdigest(),
        "agent": request.headers.get("User-Agent"), "cookies": request.COOKIES,
    })
    response.set_cookie("seen", "yes", max_age=60)
    response["X-Behind"] = "channel"
    return response


_behind_channel_consumer = view_consumer(behind_channel)


def view_channel_consumer(message):
    """The consumer of ``tests.view``; ``?do=malformed`` and ``?do=silent``
    misbehave as a broken consumer would."""
    action = message["query"].get("do", [""])[0]
    if action == "malformed":
        message.reply_channel.send({"status": "200 OK"})
    elif action != "silent":
        _behind_channel_consumer(message)


def body_read_first(view):
    """``view`` behind something that reads the whole body first, as a
    middleware may (CSRF's reads a form's)."""
    def read_first(request):
        request.body  # noqa: B018
        return view(request)
    return read_first


urlpatterns = [    path("hello/", hello),
    path("meta/", meta),
    path("form/", form),
    path("raw/", raw),
    path("session/", session),
    path("fail/", fail),
    path("forbidden/", forbidden),
    path("stream/", stream),
    path("slow-stream/", slow_stream),
    path("broken-stream/", broken_stream),
    path("big/", big),
    path("file/", file),
    path("status/", status),
    path("echo-path/<path:rest>", echo_path),
    path("closes-connections/", closes_connections),
    path("via-channel/", csrf_exempt(Channel("tests.view").as_view())),
    path("via-channel-read/", csrf_exempt(body_read_first(Channel("tests.view").as_view()))),
]
