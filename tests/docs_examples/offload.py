"""The Channel.as_view / view_consumer example of docs/django-http.rst
(run by test_views)."""

# docs: start
from django.http import JsonResponse
from django.urls import path

from channels import Channel
from channels.worker.handler import view_consumer


def report(request):
    """Slow work: runs in whichever worker takes the next reports.build."""
    rows = int(request.GET.get("rows", "10"))
    return JsonResponse({"rows": rows, "total": sum(range(rows))})


# In ROUTING: the view answers the messages of reports.build...
channel_routing = {"reports.build": view_consumer(report)}

# ...and in the URLconf, /report/ hands its requests to that channel.
urlpatterns = [path("report/", Channel("reports.build").as_view())]
# docs: end
