"""Sending the messages of one HTTP request, and the timeouts that bound it.

A request's own channels (its body channel, its reply channel) drain only
as fast as the other end reads: a worker sending a response to a slow
client, a server or a view sending an upload to a slow view. Sending to
them retries while they are full, for as long as the HTTP settings allow.

Settings, read at their first use and again after ``setting_changed``
(``override_settings``), and checked by ``manage.py check``:

``CHANNELS_HTTP_BODY_TIMEOUT`` (30)
    Seconds a worker waits for each further chunk of a request body before
    the request is abandoned (``RequestAborted``).
``CHANNELS_HTTP_SEND_TIMEOUT`` (30)
    Seconds to keep retrying a response message (or a body chunk) while its
    channel is full (a slow reader); then the rest is dropped.
``CHANNELS_HTTP_RESPONSE_TIMEOUT`` (60)
    Seconds ``channel_view`` waits for the response to start, and for each
    further chunk of it.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed

from channels.backends.base import BaseChannelBackend
from channels.exceptions import ChannelFull

# The HTTP side's timeout settings and their defaults; channels.checks
# checks them.
HTTP_TIMEOUT_SETTINGS = {
    "CHANNELS_HTTP_BODY_TIMEOUT": 30,
    "CHANNELS_HTTP_SEND_TIMEOUT": 30,
    "CHANNELS_HTTP_RESPONSE_TIMEOUT": 60,
}


# Values read so far: a setting left at its default costs Django's lazy
# settings a raised AttributeError at every look-up, twice a request.
_http_settings: dict[str, float] = {}


def http_setting(name: str) -> float:
    """One of HTTP_TIMEOUT_SETTINGS, or its default."""
    try:
        return _http_settings[name]
    except KeyError:
        value = _http_settings[name] = getattr(settings, name, HTTP_TIMEOUT_SETTINGS[name])
        return value


def _forget_http_settings(setting: str, **kwargs: Any) -> None:
    if setting in HTTP_TIMEOUT_SETTINGS:
        _http_settings.clear()


setting_changed.connect(_forget_http_settings)


def send_timeout() -> float:
    """``CHANNELS_HTTP_SEND_TIMEOUT``: see send_patiently."""
    return http_setting("CHANNELS_HTTP_SEND_TIMEOUT")


def send_patiently(backend: BaseChannelBackend, channel: str, content: dict[str, Any],
                   timeout: float) -> None:
    """Send, retrying for up to ``timeout`` seconds while ``channel`` is full.

    For the channels of one request (its body, its response), which drain
    only as fast as the other end reads: a slow reader must cost time, not
    the request. Raises ChannelFull when the time is up. Sent at once even
    from a consumer (what it sent before goes first): the other end waits
    for each chunk as it comes."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        try:
            backend.send(channel, content, immediately=True)
            return
        except ChannelFull:
            if time.monotonic() >= deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)
