from django.contrib import admin
from django.urls import path

from tests.plainproject import views

urlpatterns = [
    path("form/", views.form),
    path("done/", views.done),
    path("cookie/", views.cookie),
    path("session/", views.session),
    path("upload/", views.upload),
    path("boom/", views.boom),
    path("admin/", admin.site.urls),
]
