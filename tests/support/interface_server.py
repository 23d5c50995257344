"""Test helpers: a real interface server and real worker threads on an
in-memory backend, and raw-socket HTTP for what clients libraries hide."""

import base64
import contextlib
import os
import socket
import threading
import time

from channels.backends.memory import InMemoryChannelBackend
from channels.interfaces.threaded import start_server
from tests import interface_consumers
from tests.support.worker_threads import worker_threads

ROUTING = "tests.interface_consumers.routing"


@contextlib.contextmanager
def serving(routing=ROUTING, workers=2, backend_options=None, worker_channels=None,
            **options):
    """Yield ``(handle, backend)``: a server on a free port with ``workers``
    worker threads, stopped afterwards."""
    backend = InMemoryChannelBackend(routing=routing, **(backend_options or {}))
    for values in interface_consumers.seen.values():
        values.clear()
    channels = worker_channels or backend.registry.all_channel_names()
    with worker_threads(backend, channels, workers):
        handle = start_server(backend, "127.0.0.1", 0, **options)
        try:
            yield handle, backend
        finally:
            handle.stop()


def raw_request(port, data, timeout=5.0, read_until_close=True):
    """Send raw bytes and return everything the server answers until it
    closes (or the first response head, if ``read_until_close`` is false)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        received = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            if not chunk:
                break
            received += chunk
            if not read_until_close and b"\r\n\r\n" in received:
                break
        return received


def handshake(extra: bytes = b"", path: bytes = b"/echo/", version: bytes = b"13") -> bytes:
    """A WebSocket handshake's head, with ``extra`` header lines."""
    key = base64.b64encode(os.urandom(16))
    return (b"GET " + path + b" HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Version: " + version + b"\r\n"
            b"Sec-WebSocket-Key: " + key + b"\r\n" + extra + b"\r\n")


def send_burst(ws, texts) -> None:
    """Send text messages over a websocket-client connection in one write,
    so that the server reads them together, as from a client that sends
    faster than the layer takes its messages."""
    import websocket

    ws.sock.sendall(b"".join(
        websocket.ABNF.create_frame(text, websocket.ABNF.OPCODE_TEXT).format()
        for text in texts))


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


def download_slowly(handle, path: str, pace: float = 0.01) -> tuple[bytes, int]:
    """GET ``path`` through a small receive window, reading 64 KiB every
    ``pace`` seconds (6 MiB/s by default: far slower than a worker sends).
    Returns the response, and the most bytes of it that the server held
    for this client at one time."""
    most = 0
    done = threading.Event()

    def watch():
        nonlocal most
        while not done.is_set():
            try:
                held = [p.outbox.held_bytes for p in list(handle.server.http_connections)]
            except RuntimeError:  # the set changed while being copied
                continue
            most = max([most, *held])
            time.sleep(0.002)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            sock.settimeout(10)
            sock.connect(("127.0.0.1", handle.port))
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n"
                         f"Connection: close\r\n\r\n".encode())
            received = bytearray()
            while chunk := sock.recv(65536):
                received += chunk
                time.sleep(pace)
    finally:
        done.set()
        watcher.join()
    return bytes(received), most
