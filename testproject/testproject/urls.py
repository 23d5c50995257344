from django.contrib import admin
from django.urls import include, path

from testproject import views

urlpatterns = [
    path("hello/", views.hello),
    path("admin/", admin.site.urls),
    # The status page, for staff (docs/operations.rst); the admin links to it.
    path("channels/status/", include("channels.status.urls")),
    path("", include("chat.urls")),
]
