"""Static files in development, as Django's ``runserver`` serves them: a
request under STATIC_URL is answered from the staticfiles finders, any other
goes on to the project's ``http.request`` consumer."""

from __future__ import annotations

from urllib.parse import urlparse

from django.contrib.staticfiles.handlers import StaticFilesHandlerMixin
from django.core.exceptions import SuspiciousFileOperation
from django.core.handlers.exception import response_for_exception
from django.http import Http404, HttpRequest, HttpResponseBase

from channels.message import Message
from channels.registry import Consumer, ConsumerRegistry
from channels.worker.handler import ChannelHandler

HTTP_REQUEST = "http.request"


class StaticFilesConsumer(StaticFilesHandlerMixin, ChannelHandler):
    """An ``http.request`` consumer that serves static files and hands
    every other request to ``consumer``."""

    def __init__(self, consumer: Consumer):
        self.consumer = consumer
        self.base_url = urlparse(self.get_base_url())
        super().__init__()

    def __call__(self, message: Message) -> None:
        if self._should_handle(message["path"]):
            super().__call__(message)
        else:
            self.consumer(message)

    def get_response(self, request: HttpRequest) -> HttpResponseBase:
        """A response for every request, also one that fails: an exception
        here would leave the client waiting for HTTP_TIMEOUT. A path that
        leaves the static directories (``/static/../settings.py``) names
        no static file: 404."""
        try:
            return self.serve(request)
        except SuspiciousFileOperation:
            return response_for_exception(request, Http404("No such static file"))
        except Exception as exc:
            return response_for_exception(request, exc)


def serve_static_files(registry: ConsumerRegistry) -> None:
    """Put a StaticFilesConsumer in front of ``registry``'s ``http.request``
    consumer (once), for the workers of this process only."""
    current = registry.consumer_for_channel(HTTP_REQUEST)
    if current is not None and not isinstance(current, StaticFilesConsumer):
        registry.consumers[HTTP_REQUEST] = StaticFilesConsumer(current)
