from django import forms

from chat.models import Room


class RoomForm(forms.ModelForm):
    class Meta:
        model = Room
        fields = ["name"]
        help_texts = {"name": "Letters, digits, hyphens and underscores."}
