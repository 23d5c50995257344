from django.http import HttpResponse


def hello(request):
    """A plain view: the baseline the HTTP benchmark compares layers on."""
    return HttpResponse("Hello, world!\n", content_type="text/plain")
