from django.contrib import admin
from django.urls import include, path

from testproject import views

urlpatterns = [
    path("hello/", views.hello),
    path("wait/", views.wait),
    path("db/", views.database),
    path("admin/", admin.site.urls),
    path("", include("chat.urls")),
]
