import time

from django.db import connections
from django.http import HttpResponse, HttpResponseBadRequest


def hello(request):
    """A plain view: the baseline the HTTP benchmark compares layers on."""
    return HttpResponse("Hello, world!\n", content_type="text/plain")


def _milliseconds(request) -> float | None:
    try:
        ms = float(request.GET.get("ms", "20"))
    except ValueError:
        return None
    return ms if 0 <= ms <= 10_000 else None


def wait(request):
    """A view that waits as if on an outside API: ``?ms=20`` sleeps 20 ms
    (0 to 10000), the case worker threads are for."""
    ms = _milliseconds(request)
    if ms is None:
        return HttpResponseBadRequest("ms: a number of milliseconds, 0 to 10000\n")
    time.sleep(ms / 1000)
    return HttpResponse(f"Waited {ms:g} ms\n", content_type="text/plain")


def database(request):
    """A view that waits on PostgreSQL (the ``postgres`` database, set when
    DJANGO_POSTGRES_NAME is): ``?ms=20`` runs ``pg_sleep`` for 20 ms."""
    ms = _milliseconds(request)
    if ms is None:
        return HttpResponseBadRequest("ms: a number of milliseconds, 0 to 10000\n")
    if "postgres" not in connections:
        return HttpResponse("No PostgreSQL configured (DJANGO_POSTGRES_NAME)\n", status=503,
                            content_type="text/plain")
    with connections["postgres"].cursor() as cursor:
        cursor.execute("SELECT pg_sleep(%s)", [ms / 1000])
    return HttpResponse(f"Waited {ms:g} ms on PostgreSQL\n", content_type="text/plain")
