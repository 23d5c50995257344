from django.contrib import admin
from django.urls import path

from testproject import views

urlpatterns = [
    path("hello/", views.hello),
    path("admin/", admin.site.urls),
]
