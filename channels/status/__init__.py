"""What a channels site is doing, for operators: ``manage.py channels_status``
and the staff-only status page (``path("channels/status/",
include("channels.status.urls"))``); see docs/operations.rst.

``report`` gathers the figures (the backend's ``status()`` and the live
processes' heartbeats), ``text`` prints them, ``views`` and ``urls`` serve
them as a page and as JSON."""
