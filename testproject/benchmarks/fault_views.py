"""The views the fault report's load requests, and its URLconf.

``/run/?id=N`` writes ``N`` to the runs file (CHANNELS_FAULT_RUNS) before
it answers, so that the report counts how often each request ran, whatever
its client was told: a view run twice is a duplicate, one run for a client
answered 503 took effect unseen. ``/slow/?seconds=S`` is a long request."""

import os
import time

from django.http import HttpResponse
from django.urls import include, path

RUNS = os.environ.get("CHANNELS_FAULT_RUNS", "")


def run(request):
    with open(RUNS, "a") as runs:  # one short append: whole lines, in any process
        runs.write(request.GET["id"] + "\n")
    return HttpResponse("ran\n", content_type="text/plain")


def slow(request):
    time.sleep(float(request.GET["seconds"]))
    return run(request)


urlpatterns = [
    path("run/", run),
    path("slow/", slow),
    path("", include("testproject.urls")),
]
