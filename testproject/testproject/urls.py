from django.contrib import admin
from django.urls import include, path

from testproject import views

urlpatterns = [
    path("hello/", views.hello),
    path("wait/", views.wait),
    path("db/", views.database),
    path("admin/", admin.site.urls),
    # The status page, for staff (docs/operations.rst); the admin links to it.
    # docs: start
    path("channels/status/", include("channels.status.urls")),
    # docs: end
    path("", include("chat.urls")),
]
