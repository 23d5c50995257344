from django.http import HttpResponse
from django.urls import include, path


def hello(request):
    return HttpResponse("Hello, world")


urlpatterns = [
    path("hello/", hello),
    path("channels/status/", include("channels.status.urls")),
]
