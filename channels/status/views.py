"""The status page: the figures of ``manage.py channels_status``, live, for
staff (docs/operations.rst). The page is a shell; its script
(static/channels/status.js) polls ``data`` and keeps the history it charts
in the browser, so the server keeps nothing between polls."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache

from channels.backends import DEFAULT_CHANNEL_BACKEND, backend_settings
from channels.status.report import collect

# Seconds between two polls of the page, and how many seconds of history
# its charts show. Each poll costs the site one report: a SCAN of every
# shard (channels.backends.redis.status).
POLL_INTERVAL = 2
HISTORY = 600


def staff_only(answer_json: bool) -> Callable:
    """Active staff only. Anybody else gets JSON's 403, or for the page:
    an anonymous visitor the login page (LOGIN_URL), a signed-in user who is
    not staff a 403 (the login page would only send them back)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            user = request.user
            if user.is_active and user.is_staff:
                return view(request, *args, **kwargs)
            if answer_json:
                return JsonResponse({"error": "Staff only"}, status=403)
            if user.is_authenticated:
                raise PermissionDenied("Staff only")
            return redirect_to_login(request.get_full_path())

        return never_cache(wrapped)

    return decorate


def alias_of(request: HttpRequest) -> str:
    """``?backend=ALIAS``, a configured alias, else "default"."""
    alias = request.GET.get("backend", DEFAULT_CHANNEL_BACKEND)
    if alias not in backend_settings():
        raise Http404(f"No channel backend {alias!r}")
    return alias


@staff_only(answer_json=False)
def page(request: HttpRequest) -> HttpResponse:
    alias = alias_of(request)
    return render(request, "channels/status.html", {
        "alias": alias,
        "data_url": f"{reverse('channels-status-data')}?{urlencode({'backend': alias})}",
        "poll_interval": POLL_INTERVAL,
        "history": HISTORY,
    })


@staff_only(answer_json=True)
def data(request: HttpRequest) -> JsonResponse:
    return JsonResponse(collect(alias_of(request)))
