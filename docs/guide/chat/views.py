"""The chat's pages: plain Django views. The chat itself runs over the
room page's WebSocket (consumers.py)."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render

from chat.forms import RoomForm
from chat.models import Room


@login_required
def room_list(request):
    form = RoomForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        return redirect(form.save())
    return render(request, "chat/room_list.html", {"rooms": Room.objects.all(), "form": form})


@login_required
def room(request, name):
    return render(request, "chat/room.html", {"room": get_object_or_404(Room, name=name)})
