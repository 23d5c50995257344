"""The interface server inside the current process, on a background thread.

For ``runserver`` (the server and worker threads in one process, on the
in-memory backend) and for live-server tests::

    from channels.interfaces.threaded import start_server

    handle = start_server(backend, "127.0.0.1", 0, http_timeout=10)
    ...  # http://127.0.0.1:{handle.port}/, ws://127.0.0.1:{handle.port}/...
    handle.stop()

A Twisted reactor runs once per process and cannot be restarted, so the
first ``start_server`` starts it on a daemon thread and later servers are
added to it and removed from it. ``options`` are ``ServerConfig`` fields
(``http_timeout``, ``connect_timeout``, ``max_body_size``, ...); options not
given come from the ``CHANNELS_SERVER`` setting, then the defaults. This API
is stable: ``start_server(backend, host, port, **options) -> ServerHandle``
with ``.port``, ``.host``, ``.server`` and ``.stop(timeout)``.
"""

from __future__ import annotations

import threading
from typing import Any

from twisted.internet import reactor
from twisted.internet.threads import blockingCallFromThread

from channels.backends.base import BaseChannelBackend
from channels.interfaces import metrics
from channels.interfaces.config import ServerConfig
from channels.interfaces.server import ChannelServer
from channels.interfaces.static_files import StaticFiles

_start_lock = threading.Lock()
_thread: threading.Thread | None = None


def ensure_reactor() -> None:
    """Run the reactor on a daemon thread, unless it already runs."""
    global _thread
    with _start_lock:
        if _thread is not None or reactor.running:
            return
        started = threading.Event()
        reactor.callWhenRunning(started.set)
        _thread = threading.Thread(target=reactor.run, kwargs={"installSignalHandlers": False},
                                   name="channels-reactor", daemon=True)
        _thread.start()
        if not started.wait(10):
            raise RuntimeError("The Twisted reactor did not start")


class ServerHandle:
    """A running server; ``stop(timeout)`` stops listening, closes its
    WebSockets with 1001, gives requests in progress ``timeout`` seconds
    before 503 (``ChannelServer.shutdown``), and returns once every
    connection has closed and the disconnect messages are sent."""

    def __init__(self, server: ChannelServer, host: str, port: int):
        self.server = server
        self.host = host
        self.port = port
        self.stopped = False
        # Where /metrics is served, with the METRICS option.
        self.metrics_url: str | None = None

    def stop(self, timeout: float = 5.0) -> None:
        if not self.stopped:
            self.stopped = True
            blockingCallFromThread(reactor, self.server.shutdown, timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_server(backend: BaseChannelBackend, host: str = "127.0.0.1", port: int = 0,
                 static_files: StaticFiles | None = None, **options: Any) -> ServerHandle:
    """Serve HTTP and WebSocket for ``backend`` on ``host:port`` (0: a free
    port, see ``.port``) from the process's reactor thread, and
    ``static_files`` if given."""
    config = ServerConfig.from_settings(**options)
    ensure_reactor()

    def listen():
        server = ChannelServer(backend, reactor, config, static_files)
        listening = server.listen_tcp(port, host)
        try:
            metrics_port = metrics.start(server)
        except BaseException:
            server.shutdown()
            raise
        if metrics_port is not None:
            # Closed with the server: another may serve them here later.
            server.ports.append(metrics_port)
        return server, listening.getHost().port, metrics_port

    server, bound, metrics_port = blockingCallFromThread(reactor, listen)
    handle = ServerHandle(server, host, bound)
    handle.metrics_url = metrics.url(metrics_port) if metrics_port is not None else None
    return handle
