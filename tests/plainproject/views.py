"""Views that use what a plain Django site relies on."""

import hashlib

from django import forms
from django.http import HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.template import engines

FORM_PAGE = engines["django"].from_string(
    '<form method="post" enctype="multipart/form-data">{% csrf_token %}{{ form }}</form>')


class NameForm(forms.Form):
    name = forms.CharField(max_length=10)


def form(request):
    """A form with CSRF protection, redirecting when valid."""
    bound = NameForm(request.POST or None)
    if request.method == "POST" and bound.is_valid():
        return redirect(f"/done/?name={bound.cleaned_data['name']}")
    return HttpResponse(FORM_PAGE.render({"form": bound}, request))


def done(request):
    return HttpResponse(f"Thanks, {request.GET['name']}")


def cookie(request):
    response = HttpResponse(f"flavour={request.COOKIES.get('flavour', '-')}")
    response.set_cookie("flavour", "ginger", httponly=True)
    return response


def session(request):
    request.session["visits"] = request.session.get("visits", 0) + 1
    return HttpResponse(f"visits={request.session['visits']}")


def upload(request):
    """The size and digest of an uploaded file, read as Django streams it."""
    upload = request.FILES["file"]
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    return JsonResponse({"name": upload.name, "size": upload.size,
                         "sha256": digest.hexdigest(), "field": request.POST["note"]})


def boom(request):
    return 1 / 0
