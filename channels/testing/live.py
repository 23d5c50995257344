"""``ChannelLiveServerTestCase``: a real channels site for a test class, to
drive from a browser or a WebSocket client."""

from __future__ import annotations

import contextlib

from django.apps import apps
from django.db import connections
from django.test import TransactionTestCase, modify_settings
from django.utils.functional import classproperty

from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends
from channels.devserver import DevServer
from channels.testing.cases import isolated_channel_backends


class ChannelLiveServerTestCase(TransactionTestCase):
    """Like Django's ``LiveServerTestCase``, with channels: the interface
    server (HTTP and WebSocket) and ``workers`` worker threads run for the
    test class on a free port, at ``live_server_url`` and ``ws_url``.

    Every alias of CHANNEL_BACKENDS gets a fresh in-memory backend with its
    ROUTING for the class, so no Redis is needed. Static files are served
    from the staticfiles finders, as under ``runserver``, when
    django.contrib.staticfiles is installed and ``serve_static`` is true.
    """

    host = "127.0.0.1"
    port = 0
    workers = 4
    serve_static = True
    alias = DEFAULT_CHANNEL_BACKEND

    @classproperty
    def live_server_url(cls) -> str:
        return f"http://{cls.host}:{cls.server.port}"

    @classproperty
    def ws_url(cls) -> str:
        return f"ws://{cls.host}:{cls.server.port}"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.enterClassContext(modify_settings(ALLOWED_HOSTS={"append": cls.host}))
        cls.enterClassContext(isolated_channel_backends())
        # As for Django's live server: an in-memory SQLite test database
        # exists only in this thread's connection, so the workers share it.
        shared = {conn.alias: conn for conn in connections.all()
                  if conn.vendor == "sqlite" and conn.is_in_memory_db()}
        for conn in shared.values():
            conn.inc_thread_sharing()
            cls.addClassCleanup(conn.dec_thread_sharing)
        cls.server = DevServer(
            channel_backends[cls.alias], cls.host, cls.port, workers=cls.workers,
            static=cls.serve_static and apps.is_installed("django.contrib.staticfiles"),
            connections_override=shared,
        )
        cls.server.start()
        cls.addClassCleanup(cls.server.stop)

    # The database is reset between tests once the consumers that the last
    # test set off (disconnects, say) have run, and none runs meanwhile.

    @classmethod
    def _fixture_setup(cls):
        # The first time, from setUpClass, comes before the server starts.
        server = cls.__dict__.get("server")
        with server.quiet() if server is not None else contextlib.nullcontext():
            super()._fixture_setup()

    def _fixture_teardown(self):
        with self.server.quiet():
            super()._fixture_teardown()
