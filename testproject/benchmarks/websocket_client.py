"""A minimal WebSocket load client for the benchmark: raw sockets and one
selector, so that the client costs little CPU and thousands of connections
cost one file descriptor each. Text frames of under 126 bytes only."""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def frame(payload: bytes) -> bytes:
    """A masked text frame (mask 0: the payload is sent as it is)."""
    assert len(payload) < 126
    return bytes([0x81, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


# Sockets per loopback source address: one (source, destination) pair has
# only the ephemeral port range (about 28,000 ports).
PER_SOURCE = 20000


def source_address(index: int) -> str:
    """The loopback address (127.0.1.x, ...) the ``index``-th socket binds."""
    n = index // PER_SOURCE + 1
    return f"127.0.{1 + n // 250}.{n % 250 + 1}"


def connect(port: int, index: int) -> socket.socket:
    """A TCP connection to 127.0.0.1:``port`` from a source address of
    127.0.0.0/8 picked by ``index``; the port is chosen at connect time
    (IP_BIND_ADDRESS_NO_PORT), so each address has its own range."""
    sock = socket.socket()
    sock.setsockopt(socket.IPPROTO_IP, getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24), 1)
    sock.bind((source_address(index), 0))
    sock.connect(("127.0.0.1", port))
    return sock


def open_sockets(port: int, path: str, count: int, batch: int = 500) -> list[socket.socket]:
    """``count`` WebSockets with completed handshakes, opened ``batch`` at
    a time (the listen backlog is finite), from source addresses spread
    over 127.0.0.0/8 (``connect``)."""
    request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: ").encode() + KEY + \
        b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
    opened = []
    while len(opened) < count:
        pending = {}
        selector = selectors.DefaultSelector()
        for _ in range(min(batch, count - len(opened))):
            sock = connect(port, len(opened) + len(pending))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.sendall(request)
            sock.setblocking(False)
            pending[sock] = b""
            selector.register(sock, selectors.EVENT_READ)
        deadline = time.monotonic() + 60
        while pending:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{len(pending)} handshakes unanswered")
            for key, _ in selector.select(1):
                sock = key.fileobj
                data = pending[sock] + sock.recv(4096)
                if b"\r\n\r\n" in data:
                    if not data.startswith(b"HTTP/1.1 101"):
                        head = data.split(b"\r\n\r\n")[0]
                        raise RuntimeError(f"handshake {len(opened) + 1} of {count} failed: "
                                           f"{head!r}")
                    selector.unregister(sock)
                    del pending[sock]
                    opened.append(sock)
                    # A ping may come with the head (the server pings a new
                    # socket within its first interval): left unanswered,
                    # the socket would be dropped.
                    answer_pings(sock, data.split(b"\r\n\r\n", 1)[1])
                else:
                    pending[sock] = data
        selector.close()
    return opened


def hold(sockets: list[socket.socket], seconds: float) -> tuple[int, int]:
    """Keep ``sockets`` open and silent for ``seconds``, answering the
    server's pings (as a browser does, or the server drops them); returns
    the data frames that arrived meanwhile (none, for idle sockets) and the
    pings."""
    selector = selectors.DefaultSelector()
    buffers = {}
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
        buffers[sock] = b""
    frames = pings = 0
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        for key, _ in selector.select(min(left, 1.0)):
            sock = key.fileobj
            received = sock.recv(65536)
            if not received:
                raise RuntimeError("the server closed a socket while it was idle")
            buffers[sock], data_frames, answered = answer_pings(sock, buffers[sock] + received)
            frames += data_frames
            pings += answered
    selector.close()
    return frames, pings


def answer_pings(sock: socket.socket, data: bytes) -> tuple[bytes, int, int]:
    """Answer the pings among the frames in ``data`` (each with a masked
    pong with its payload); returns what is left of ``data`` (an incomplete
    frame), and the data frames and pings it held."""
    frames = pings = 0
    while len(data) >= 2 and len(data) >= 2 + (data[1] & 0x7F) and data[1] & 0x7F < 126:
        length = data[1] & 0x7F
        payload, opcode = data[2:2 + length], data[0] & 0x0F
        if opcode == 0x9:
            sock.send(bytes([0x8A, 0x80 | length]) + b"\0\0\0\0" + payload)
            pings += 1
        elif opcode in (1, 2):
            frames += 1
        data = data[2 + length:]
    return data, frames, pings


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        sock.close()


class FrameReader:
    """Counts complete data frames in a byte stream, skipping control frames."""

    def __init__(self):
        self.buffer = b""

    def feed(self, data: bytes) -> int:
        self.buffer += data
        frames = 0
        while len(self.buffer) >= 2:
            length = self.buffer[1] & 0x7F
            header = 2
            if length == 126:
                if len(self.buffer) < 4:
                    break
                length, header = int.from_bytes(self.buffer[2:4], "big"), 4
            if len(self.buffer) < header + length:
                break
            if self.buffer[0] & 0x0F in (1, 2):
                frames += 1
            self.buffer = self.buffer[header + length:]
        return frames


def echo_load(sockets: list[socket.socket], seconds: float, warmup: float = 1.0,
              payload: bytes = b"x" * 32) -> tuple[list[float], float]:
    """Each socket keeps one message in flight. Returns the round-trip
    times (seconds) measured after ``warmup`` and the measured duration."""
    message = frame(payload)
    selector = selectors.DefaultSelector()
    readers, sent_at = {}, {}
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
        readers[sock] = FrameReader()
        sent_at[sock] = time.perf_counter()
        sock.send(message)
    start = time.perf_counter()
    measure_from = start + warmup
    end = measure_from + seconds
    latencies = []
    while True:
        now = time.perf_counter()
        if now >= end:
            break
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            data = sock.recv(65536)
            if not data:
                raise RuntimeError("server closed a connection during the echo load")
            arrived = time.perf_counter()
            for _ in range(readers[sock].feed(data)):
                if arrived >= measure_from:
                    latencies.append(arrived - sent_at[sock])
                sent_at[sock] = arrived
                sock.send(message)
    # Drain the messages still in flight so the sockets can be reused.
    outstanding = set(sockets)
    drain_deadline = time.monotonic() + 5
    while outstanding and time.monotonic() < drain_deadline:
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            if readers[sock].feed(sock.recv(65536)):
                outstanding.discard(sock)
    selector.close()
    return latencies, end - measure_from


def time_to_reach_all(sockets: list[socket.socket], trigger: Callable[[], object],
                      timeout: float = 10) -> float:
    """Seconds from ``trigger()`` until the last of ``sockets`` has received
    one frame. The sockets join the selector before the trigger, so that
    the time is the servers' and not the client's setting up."""
    selector = selectors.DefaultSelector()
    readers = {}
    for sock in sockets:
        selector.register(sock, selectors.EVENT_READ)
        readers[sock] = FrameReader()
    waiting = set(sockets)
    started = last = time.perf_counter()
    trigger()
    deadline = time.monotonic() + timeout
    while waiting:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(waiting)} sockets got nothing")
        for key, _ in selector.select(0.5):
            sock = key.fileobj
            if readers[sock].feed(sock.recv(65536)) and sock in waiting:
                waiting.discard(sock)
                last = time.perf_counter()
    selector.close()
    return last - started
