"""Throwaway ``redis-server`` processes for tests and benchmarks.

Tests of anything that talks to Redis run against real servers started
here, on free loopback ports, with no persistence and their own temporary
directory; nothing touches a Redis the developer may be running.

API:

``shared_servers(n) -> list[RedisServer]``
    ``n`` servers shared by every test of this process: started on first
    use, reused across test classes, stopped by ``stop_all()`` (the test
    runner calls it; ``atexit`` does too). A shared server that a test
    stopped is started again by the next call. Tests that stop or restart a
    server on purpose should make their own ``RedisServer`` instead.

``RedisServer(*options, unix_socket=False, config=None)``
    One server, with extra ``redis-server`` command-line options if given
    (``RedisServer("--requirepass", "pw")``), and with ``config`` the text
    of a configuration file written in its directory at each start (a
    sentinel's, which it rewrites). ``.start()`` (again after
    ``.stop()``: same port, empty data), ``.stop()``, ``.running``,
    ``.host``, ``.port``, ``.url`` (``redis://127.0.0.1:<port>``),
    ``.client(**options)`` (a redis-py client), ``.cleanup()`` (stop and
    delete its directory). With ``unix_socket``, it listens on a Unix socket
    in its directory as well: ``.socket_path``, and ``.url_for(db)`` is a
    ``unix://`` URL (else ``redis://``).

``backend_config(servers, **options) -> dict``
    A ``CHANNEL_BACKENDS`` entry for ``RedisChannelBackend`` over
    ``servers``, with a PREFIX unique to the call, so tests sharing servers
    never see each other's data. Options are upper-cased setting names
    (``capacity=5`` gives ``"CAPACITY": 5``).

``redis_backend(servers, **options) -> RedisChannelBackend``
    A backend built from ``backend_config``; its ``flush()`` deletes only
    its own keys.

``stop_all()``
    Stops every server started here.

If ``redis-server`` is not installed, starting one raises
``RedisServerMissing`` saying how to install it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence

import redis

REDIS_SERVER = os.environ.get("REDIS_SERVER", "redis-server")

_started: list[RedisServer] = []
_shared: list[RedisServer] = []
_shared_lock = threading.Lock()
_prefixes = itertools.count()


class RedisServerMissing(RuntimeError):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    host = "127.0.0.1"

    def __init__(self, *options: str, unix_socket: bool = False,
                 config: str | None = None) -> None:
        self.options = options
        self.unix_socket = unix_socket
        self.config = config
        self.port: int | None = None
        self.process: subprocess.Popen | None = None
        self.directory: str | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.port} {'running' if self.running else 'stopped'}>"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}"

    @property
    def socket_path(self) -> str | None:
        """The Unix socket's path, once started (``unix_socket`` only)."""
        if not self.unix_socket or self.directory is None:
            return None
        return os.path.join(self.directory, "redis.sock")

    def url_for(self, db: int = 0) -> str:
        """A ``HOSTS`` URL for database ``db``: through the Unix socket if
        the server has one."""
        if self.unix_socket:
            return f"unix://{self.socket_path}?db={db}"
        return f"{self.url}/{db}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self, **options) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, **options)

    def start(self) -> RedisServer:
        """Start the server: on a free port the first time, on the same port
        after a stop (so clients reconnect to it)."""
        if self.running:
            return self
        executable = shutil.which(REDIS_SERVER)
        if executable is None:
            raise RedisServerMissing(
                f"{REDIS_SERVER!r} is not on PATH. The Redis tests start their own "
                f"throwaway servers; install Redis first, e.g. "
                f"'apt-get install redis-server' (Debian/Ubuntu) or "
                f"'brew install redis' (macOS), or set REDIS_SERVER to its path."
            )
        if self.directory is None:
            self.directory = tempfile.mkdtemp(prefix="channels-redis-")
        options = self.options
        if self.unix_socket:
            options += ("--unixsocket", self.socket_path, "--unixsocketperm", "700")
        config_file = []
        if self.config is not None:
            config_file = [os.path.join(self.directory, "redis.conf")]
            with open(config_file[0], "w") as file:
                file.write(self.config)
        # A free port can be taken by someone else before redis binds it;
        # only a first start may move to another port.
        for attempt in range(5):
            port = self.port or _free_port()
            self.process = subprocess.Popen(
                [executable, *config_file, "--port", str(port), "--bind", self.host,
                 "--save", "", "--appendonly", "no", "--dir", self.directory,
                 "--daemonize", "no", "--loglevel", "warning", "--protected-mode", "no",
                 *options],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )
            if self._wait_ready(port):
                self.port = port
                if self not in _started:
                    _started.append(self)
                return self
            error = self._reap()
            if self.port is not None and attempt >= 2:
                break
        raise RuntimeError(f"redis-server did not start on port {port}: {error}")

    def _wait_ready(self, port: int, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection((self.host, port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    # A server with a password answers, but NOAUTH.
                    if sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                        return True
            except OSError:
                pass
            time.sleep(0.01)
        return False

    def _reap(self) -> str:
        process, self.process = self.process, None
        if process is None:
            return ""
        if process.poll() is None:
            process.kill()
        _, stderr = process.communicate()
        return stderr.decode(errors="replace").strip()

    def stop(self) -> None:
        """Stop the server at once (SIGKILL: an outage, not a shutdown); its
        data is gone."""
        self._reap()

    def cleanup(self) -> None:
        self.stop()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


def shared_servers(n: int) -> list[RedisServer]:
    """The first ``n`` servers shared by this process's tests, running."""
    with _shared_lock:
        while len(_shared) < n:
            _shared.append(RedisServer())
        return [server.start() for server in _shared[:n]]


def unique_prefix() -> str:
    return f"t{os.getpid()}-{next(_prefixes)}:"


def backend_config(servers: Sequence[RedisServer], **options) -> dict:
    config = {
        "BACKEND": "channels.backends.redis.RedisChannelBackend",
        "HOSTS": [server.url for server in servers],
        "PREFIX": unique_prefix(),
    }
    config.update({key.upper(): value for key, value in options.items()})
    return config


def redis_backend(servers: Sequence[RedisServer], alias: str = "default", **options):
    from channels.backends import create_backend

    return create_backend(alias, backend_config(servers, **options))


def stop_all() -> None:
    while _started:
        _started.pop().cleanup()
    _shared.clear()


atexit.register(stop_all)
