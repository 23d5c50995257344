"""Steady HTTP and WebSocket load for the fault report, recording every
request and every message, on an asyncio loop of its own thread.

HTTP is open-loop: ``http_rate`` requests a second whatever the server
does (a slow server does not slow the clients down, as with real users),
each ``GET /run/?id=N`` on its own connection, recorded with its status
(or ``refused``/``reset``/``closed`` when no response came) and times.
WebSockets: ``sockets`` echo sockets, each sending a numbered text
message ``ws_rate`` times a second; every echo is recorded against its
number, so a lost or duplicated message shows. A socket the server closes
is recorded with its close code (``no close frame`` if the connection just
ended) and reopened half a second later, as a browser's code would.

Times are ``time.monotonic()``, the clock of the report's fault marks.
"""

from __future__ import annotations

import asyncio
import itertools
import struct
import threading
import time
from dataclasses import dataclass, field

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
NO_CLOSE_FRAME = "no close frame"
RECONNECT_AFTER = 0.5


@dataclass
class Request:
    id: int
    path: str
    sent: float
    status: int | str | None = None
    done: float | None = None
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Message:
    socket: int
    seq: int
    sent: float
    echoes: list[float] = field(default_factory=list)


@dataclass
class Socket:
    id: int
    opened: float
    closed: float | None = None
    code: int | str | None = None  # a close the server began; None if open or ours


@dataclass
class Handshake:
    at: float
    status: int | str


def frame(opcode: int, payload: bytes) -> bytes:
    """A client frame, masked with a zero mask (the payload as it is)."""
    if len(payload) < 126:
        head = bytes([0x80 | opcode, 0x80 | len(payload)])
    else:
        head = bytes([0x80 | opcode, 0x80 | 126]) + struct.pack("!H", len(payload))
    return head + b"\0\0\0\0" + payload


class Load:
    def __init__(self, port: int, http_rate: float = 40, sockets: int = 20,
                 ws_rate: float = 5, http_timeout: float = 90) -> None:
        self.port = port
        self.http_rate = http_rate
        self.socket_count = sockets
        self.ws_rate = ws_rate
        self.http_timeout = http_timeout
        self.requests: list[Request] = []
        self.messages: dict[tuple[int, int], Message] = {}
        self.sockets: list[Socket] = []
        self.handshakes: list[Handshake] = []
        # Echoes of no message sent on their socket (another socket's).
        self.misdelivered: list[str] = []
        self.ids = itertools.count()
        self.sending = True
        self.closing = False  # the report closes the sockets: not the server's close
        self.started = self.stopped = self.ended = None
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.tasks: set[asyncio.Task] = set()
        self.writers: dict[int, asyncio.StreamWriter] = {}

    # The report's side (any thread).

    def start(self) -> Load:
        self.started = time.monotonic()
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._begin(), self.loop).result(10)
        return self

    def request(self, path: str) -> Request:
        """One more request, beside the steady ones (``id`` is added)."""
        return asyncio.run_coroutine_threadsafe(self._request_now(path), self.loop).result(10)

    def unanswered(self) -> int:
        return sum(request.done is None for request in self.requests)

    def unechoed(self) -> int:
        """Messages neither echoed nor ended with their socket."""
        closed = {sock.id for sock in self.sockets if sock.closed is not None}
        return sum(not m.echoes and m.socket not in closed
                   for m in list(self.messages.values()))  # the loop adds to it

    def stop(self, echo_wait: float = 5) -> None:
        """Stop sending; wait for every request's answer (up to
        ``http_timeout``) and ``echo_wait`` seconds at most for the last
        echoes; then close the sockets (closes not counted as the
        server's)."""
        self.sending = False
        self.stopped = time.monotonic()
        while ((self.unanswered() and time.monotonic() < self.stopped + self.http_timeout)
               or (self.unechoed() and time.monotonic() < self.stopped + echo_wait)):
            time.sleep(0.1)
        self.ended = time.monotonic()
        asyncio.run_coroutine_threadsafe(self._end(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    # The loop's side.

    def _spawn(self, coroutine) -> None:
        task = self.loop.create_task(coroutine)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _begin(self) -> None:
        self._spawn(self._http_clients())
        for _ in range(self.socket_count):
            self._spawn(self._websocket_client())

    async def _end(self) -> None:
        self.closing = True
        for writer in list(self.writers.values()):
            try:
                writer.write(frame(0x8, struct.pack("!H", 1000)))
                writer.close()
            except (OSError, RuntimeError):
                pass
        for task in list(self.tasks):
            task.cancel()
        await asyncio.sleep(0.1)

    async def _http_clients(self) -> None:
        interval = 1 / self.http_rate
        due = time.monotonic()
        while self.sending:
            await self._request_now("/run/")
            due += interval
            await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def _request_now(self, path: str) -> Request:
        number = next(self.ids)
        separator = "&" if "?" in path else "?"
        request = Request(number, f"{path}{separator}id={number}", time.monotonic())
        self.requests.append(request)
        self._spawn(self._fetch(request))
        return request

    async def _fetch(self, request: Request) -> None:
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError:
            request.status, request.done = "refused", time.monotonic()
            return
        try:
            writer.write(f"GET {request.path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Connection: close\r\n\r\n".encode())
            data = await asyncio.wait_for(reader.read(), self.http_timeout)
            request.done = time.monotonic()
            if not data:
                request.status = "closed"
                return
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            request.status = int(head[0].split(" ", 2)[1])
            request.headers = dict(line.lower().split(": ", 1) for line in head[1:])
        except ConnectionResetError:
            request.status, request.done = "reset", time.monotonic()
        except TimeoutError:
            pass  # unanswered
        finally:
            writer.close()

    async def _websocket_client(self) -> None:
        while self.sending:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                self.handshakes.append(Handshake(time.monotonic(), "refused"))
                await asyncio.sleep(RECONNECT_AFTER)
                continue
            try:
                await self._websocket(reader, writer)
            except (OSError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()
            await asyncio.sleep(RECONNECT_AFTER)

    async def _websocket(self, reader: asyncio.StreamReader,
                         writer: asyncio.StreamWriter) -> None:
        writer.write(b"GET /ws/echo/ HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     b"Sec-WebSocket-Key: " + KEY + b"\r\n\r\n")
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            self.handshakes.append(Handshake(time.monotonic(), "closed" if not exc.partial
                                             else int(exc.partial.split(b" ", 2)[1])))
            return
        status = int(head.split(b" ", 2)[1])
        self.handshakes.append(Handshake(time.monotonic(), status))
        if status != 101:
            return
        sock = Socket(len(self.sockets), time.monotonic())
        self.sockets.append(sock)
        self.writers[sock.id] = writer
        sender = self.loop.create_task(self._send_numbered(sock, writer))
        try:
            await self._read_frames(sock, reader, writer)
        finally:
            sender.cancel()
            self.writers.pop(sock.id, None)
            if sock.closed is None:
                sock.closed = time.monotonic()
                if not self.closing:
                    sock.code = NO_CLOSE_FRAME

    async def _send_numbered(self, sock: Socket, writer: asyncio.StreamWriter) -> None:
        interval = 1 / self.ws_rate
        # Spread the sockets' sends over the interval.
        await asyncio.sleep(interval * (sock.id % self.socket_count) / self.socket_count)
        for seq in itertools.count():
            if not self.sending or sock.closed is not None:
                return
            self.messages[sock.id, seq] = Message(sock.id, seq, time.monotonic())
            writer.write(frame(0x1, f"{sock.id}:{seq}".encode()))
            await asyncio.sleep(interval)

    async def _read_frames(self, sock: Socket, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        while True:
            first, second = await reader.readexactly(2)
            length = second & 0x7F
            if length == 126:
                length = struct.unpack("!H", await reader.readexactly(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", await reader.readexactly(8))[0]
            payload = await reader.readexactly(length)
            opcode = first & 0x0F
            if opcode == 0x1:
                socket_id, seq = map(int, payload.split(b":"))
                message = self.messages.get((socket_id, seq))
                if message is None or socket_id != sock.id:
                    self.misdelivered.append(payload.decode(errors="replace"))
                else:
                    message.echoes.append(time.monotonic())
            elif opcode == 0x9:
                writer.write(frame(0xA, payload))
            elif opcode == 0x8:
                sock.closed = time.monotonic()
                if not self.closing:
                    sock.code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 \
                        else "no code"
                writer.write(frame(0x8, payload[:2]))
                return
