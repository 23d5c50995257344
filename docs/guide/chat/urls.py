from django.contrib.auth import views as auth_views
from django.urls import path

from chat import views

urlpatterns = [
    path("", views.room_list, name="rooms"),
    path("rooms/<slug:name>/", views.room, name="room"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
]
