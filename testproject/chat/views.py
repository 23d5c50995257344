"""The chat's pages: plain Django views; the chat itself runs over the
room page's WebSocket."""

from django import forms
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import UserCreationForm
from django.shortcuts import get_object_or_404, redirect, render

from chat.models import Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["name"]
        help_texts = {"name": "Letters, digits, hyphens and underscores."}


def signup(request):
    form = UserCreationForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        login(request, form.save())
        return redirect("rooms")
    return render(request, "registration/signup.html", {"form": form})


@login_required
def room_list(request):
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect(form.save())
    return render(request, "chat/room_list.html",
                  {"rooms": Room.objects.all(), "form": form})


@login_required
def room(request, name):
    return render(request, "chat/room.html", {"room": get_object_or_404(Room, name=name)})
