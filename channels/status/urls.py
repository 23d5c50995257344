"""Include in a project's URLconf, under any prefix:
``path("channels/status/", include("channels.status.urls"))``."""

from django.urls import path

from channels.status import views

urlpatterns = [
    path("", views.page, name="channels-status"),
    path("data.json", views.data, name="channels-status-data"),
]
