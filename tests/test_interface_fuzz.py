"""Property-based tests of the interface server (hypothesis), as Daphne
has for its header handling: generated request heads, header names and
values, chunked bodies and WebSocket frames, split at random points across
TCP writes, against one real server with real workers. Whatever is sent,
the properties are:

* every input gets a well-formed answer (a status line with a documented
  status and its reason phrase, or a close frame with a documented code);
* the server keeps serving: a normal request succeeds after each input;
* nothing is logged as an error and no traceback, by channels or Twisted.

``derandomize`` makes the examples the same on every run (CI), and
``max_examples`` keeps the whole module to a few tens of seconds.
"""

import contextlib
import hashlib
import io
import logging
import re
import socket
import string
import struct
import warnings

from django.test import SimpleTestCase
from hypothesis import HealthCheck, Phase, example, given, settings
from hypothesis import strategies as st
from hypothesis.errors import HypothesisDeprecationWarning
from twisted.logger import LogLevel, globalLogPublisher

from tests.support.interface_server import serving

# No shrinking: an example that fails may wait seconds for an answer, and
# shrinking would try hundreds of them; the failing example is printed as
# generated.
FUZZ = settings(derandomize=True, database=None, deadline=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Every status the server gives a request it cannot serve (docs/security.rst),
# and 200 from the test consumer for one it can.
HTTP_STATUSES = {200, 400, 408, 413, 431, 501, 505}
# Every close code the server sends when it closes a WebSocket itself.
SERVER_CLOSE_CODES = {1002, 1007, 1009}
STATUS_LINE = re.compile(rb"HTTP/1\.1 (\d{3}) ([A-Za-z][A-Za-z -]*)\r\n")


class Trouble(logging.Handler):
    """Collects what channels and Twisted log as errors, with tracebacks."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.found: list[str] = []

    def emit(self, record):
        self.found.append(self.format(record))

    def twisted(self, event):
        if event.get("log_failure") is not None or event.get("log_level") in (
                LogLevel.error, LogLevel.critical):
            self.found.append(str(event.get("log_failure") or event.get("log_format")))


def split_writes(sock, data: bytes, cuts: list[int]) -> None:
    """Send ``data`` in pieces cut at ``cuts`` (positions), one write each."""
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        if cut > start:
            try:
                sock.sendall(data[start:cut])
            except OSError:
                return  # the server closed on what came before: fine
            start = cut


def read_head(sock) -> bytes:
    """The final response's head and what came with it, after any interim
    ``100 Continue``."""
    data = b""
    with contextlib.suppress(OSError):
        while True:
            while data.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
                data = data[len(b"HTTP/1.1 100 Continue\r\n\r\n"):]
            if b"\r\n\r\n" in data:
                break
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    return data


class FuzzTestCase(SimpleTestCase):
    server_options: dict = {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.log = io.StringIO()
        cls.trouble = Trouble()
        logging.getLogger("channels").addHandler(cls.trouble)
        cls.addClassCleanup(logging.getLogger("channels").removeHandler, cls.trouble)
        globalLogPublisher.addObserver(cls.trouble.twisted)
        cls.addClassCleanup(globalLogPublisher.removeObserver, cls.trouble.twisted)
        # The in-memory backend's receive draws from the random module on
        # worker threads, which hypothesis notices and warns about.
        cls.enterClassContext(warnings.catch_warnings())
        warnings.filterwarnings("ignore", category=HypothesisDeprecationWarning)
        cls.handle, _ = cls.enterClassContext(serving(
            access_log=cls.log, header_timeout=0.5, body_timeout=0.3, **cls.server_options))
        cls.port = cls.handle.port

    def connection(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def assert_well(self):
        """The server still serves, and has logged no error."""
        with self.connection() as sock:
            sock.sendall(b"GET /x/ HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            head = read_head(sock)
        self.assertTrue(head.startswith(b"HTTP/1.1 200 OK\r\n"), head[:100])
        self.assertEqual(self.trouble.found, [])


# Request heads.

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"


def mostly(usual, anything):
    """``usual`` three times in four, so that most examples get past the
    first check, and ``anything`` otherwise."""
    # (one_of would pick each branch about as often, whatever their number.)
    return st.sampled_from([True, True, True, False]).flatmap(
        lambda usually: usual if usually else anything)


token = st.text(TCHAR, min_size=1, max_size=12).map(str.encode)
# Anything but a line end, which would make it another line.
one_line = st.binary(max_size=30).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
number = st.integers(0, 10**22).map(lambda n: str(n).encode())
header_name = mostly(
    st.one_of(token, st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Host",
                                      b"Expect", b"Connection", b"Upgrade", b"Cookie",
                                      b"X-Forwarded-For", b"X-Forwarded-Port",
                                      b"X-Forwarded-Proto"])),
    one_line)
header_value = mostly(
    st.text(string.ascii_letters + string.digits + " ,;=/-_.", max_size=30).map(str.encode),
    st.one_of(one_line, number, st.sampled_from([
        b"chunked", b"gzip, chunked", b"100-continue", b"close", b"keep-alive", b"-1", b"0x10",
        b" 5", b"websocket", b"Upgrade", b"localhost", b"\xc2\xb2", b"\x00", b"\x0b",
        b"\x0c"])))
method = mostly(st.sampled_from([b"GET", b"POST", b"HEAD", b"PUT", b"OPTIONS"]),
                st.one_of(token, one_line))
target = mostly(st.text(TCHAR + "/?=&%", max_size=20).map(lambda t: b"/fuzz/" + t.encode()),
                st.one_of(st.just(b"*"), st.just(b"http://localhost/fuzz/"), one_line))
version = mostly(st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
                 st.one_of(st.sampled_from([b"HTTP/2.0", b"HTTP/1.2", b"HTTP/0.9", b"http/1.1",
                                            b"HTTP/1.10"]), one_line))
latin1_line = st.text(st.characters(codec="latin-1", exclude_characters="\r\n"),
                      max_size=8).map(lambda t: t.encode("latin-1"))
forwarded_for = st.one_of(st.ip_addresses().map(lambda a: str(a).encode()), latin1_line,
                          st.sampled_from([b"1.2.3.4, 5.6.7.8", b"1.2.3.4:80", b"[::1]", b""]))
# str.isdigit() takes superscripts (\xb2, \xb9) that int() refuses.
forwarded_port = st.one_of(number, latin1_line,
                           st.sampled_from([b"\xb2", b"\xb9", b"0", b"65536", b"080", b"+1"]))
forwarded_proto = st.one_of(latin1_line, st.sampled_from([b"https", b"WSS", b"http, https",
                                                          b"gopher", b""]))
separator = mostly(st.just(b": "), st.sampled_from([b":", b" : ", b":\t", b" :"]))


@st.composite
def request_heads(draw):
    lines = [draw(method) + b" " + draw(target) + b" " + draw(version)]
    if draw(mostly(st.just(True), st.just(False))):
        lines.append(b"Host: localhost")
    for _ in range(draw(st.integers(0, 6))):
        lines.append(draw(header_name) + draw(separator) + draw(header_value))
    if draw(st.booleans()):
        lines.append(b"X-Forwarded-For: " + draw(forwarded_for))
        for name, values in ((b"Port", forwarded_port), (b"Proto", forwarded_proto)):
            if draw(st.booleans()):
                lines.append(b"X-Forwarded-" + name + b": " + draw(values))
    return b"\r\n".join(lines) + b"\r\n\r\n" + draw(st.binary(max_size=64))


class RequestHeadTests(FuzzTestCase):
    # Proxy headers are parsed too (a bad one is 400, logged as a warning).
    server_options = {"proxy_headers": True}

    @settings(FUZZ, max_examples=200)
    @given(data=request_heads(), cuts=st.lists(st.integers(0, 500), max_size=4))
    # The attacks of issue 17 that once got no answer (and a traceback).
    @example(data=b"GET /fuzz/ HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\n"
                  b"X-Forwarded-Port: \xb2\r\n\r\n", cuts=[])
    @example(data=b"GET /fuzz/ HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: 1.2.3.4\r\n"
                  b"X-Forwarded-Port: " + b"9" * 30 + b"\r\n\r\n", cuts=[5, 40])
    @example(data=b"POST /fuzz/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 48\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
                  b"GET /hidden/ HTTP/1.1\r\nHost: localhost\r\n\r\n", cuts=[])
    def test_every_head_gets_a_well_formed_answer(self, data, cuts):
        with self.connection() as sock:
            split_writes(sock, data, cuts)
            head = read_head(sock)
        match = STATUS_LINE.match(head)
        self.assertIsNotNone(match, (data, head[:200]))
        status = int(match[1])
        self.assertIn(status, HTTP_STATUSES, (data, head[:200]))
        self.assertIn(b"\r\n\r\n", head)
        self.assert_well()


# Chunked bodies.


@st.composite
def chunked_bodies(draw):
    """A chunked body, mostly well-formed: (bytes, the body it encodes or
    None when it is malformed)."""
    chunks = draw(st.lists(st.binary(min_size=1, max_size=300), max_size=6))
    parts = []
    for chunk in chunks:
        size = b"%x" % len(chunk)
        size = draw(st.sampled_from([size, size.upper(), size + b";ext=1", b"0" + size]))
        parts.append(size + b"\r\n" + chunk + b"\r\n")
    trailer = draw(st.sampled_from([b"", b"X-Trailer: 1\r\n"]))
    encoded = b"".join(parts) + b"0\r\n" + trailer + b"\r\n"
    body = b"".join(chunks)
    if draw(st.integers(0, 2)) == 0:
        # Break it: a byte changed or dropped somewhere (a wrong size, a bad
        # chunk end: the h11 < 0.16 smuggling bug).
        at = draw(st.integers(0, len(encoded) - 1))
        replacement = draw(st.sampled_from([b"", b"X", b"\n", b"\r", b"g", b"-"]))
        broken = encoded[:at] + replacement + encoded[at + 1:]
        if broken != encoded:
            return broken, None
    return encoded, body


class ChunkedBodyTests(FuzzTestCase):
    @settings(FUZZ, max_examples=100)
    @given(body=chunked_bodies(), cuts=st.lists(st.integers(0, 2000), max_size=6))
    def test_chunked_body_arrives_whole_or_gets_400(self, body, cuts):
        encoded, expected = body
        data = (b"POST /body/ HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n"
                b"Connection: close\r\n\r\n" + encoded)
        with self.connection() as sock:
            split_writes(sock, data, cuts)
            answer = b""
            with contextlib.suppress(OSError):
                while chunk := sock.recv(65536):
                    answer += chunk
        match = STATUS_LINE.match(answer)
        self.assertIsNotNone(match, (encoded, answer[:200]))
        status = int(match[1])
        if expected is not None:
            self.assertEqual(status, 200, (encoded, answer[:300]))
            digest = hashlib.sha256(expected).hexdigest()
            self.assertTrue(answer.endswith(f"{len(expected)} {digest}".encode()), answer)
        else:
            # A break can still be well-formed (a size digit swapped for
            # another body), so 200 counts too; but never a wrong body.
            self.assertIn(status, {200, 400, 408}, (encoded, answer[:300]))
        self.assert_well()


# WebSocket frames.


def frame(opcode: int, payload: bytes, fin: bool = True, rsv: int = 0,
          masked: bool = True) -> bytes:
    """One client frame, masked with a fixed key unless ``masked`` is false
    (a real client draws a key per frame; the server cannot tell)."""
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    length = len(payload)
    mask_bit = 0x80 if masked else 0
    if length < 126:
        head += bytes([mask_bit | length])
    elif length < 65536:
        head += bytes([mask_bit | 126]) + struct.pack("!H", length)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", length)
    if not masked:
        return head + payload
    key = b"\x37\xfa\x21\x3d"
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def parse_frames(buffer: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """The complete frames at the start of ``buffer``, each (opcode,
    payload), and the rest. A server frame is never masked, nor has RSV
    bits without an extension: such a frame ends the parse."""
    frames = []
    while len(buffer) >= 2 and not (buffer[1] & 0x80 or buffer[0] & 0x70):
        length, offset = buffer[1] & 0x7F, 2
        if length == 126:
            length, offset = struct.unpack("!H", buffer[2:4])[0] if len(buffer) >= 4 else -1, 4
        elif length == 127:
            length, offset = (struct.unpack("!Q", buffer[2:10])[0] if len(buffer) >= 10
                              else -1), 10
        if length < 0 or len(buffer) < offset + length:
            break
        frames.append((buffer[0] & 0x0F, buffer[offset:offset + length]))
        buffer = buffer[offset + length:]
    return frames, buffer


def converse(sock, replies: int) -> tuple[list[tuple[int, bytes]], bool]:
    """Read the server's frames, as a client would: answer its close frame
    with one, or close with 1000 once ``replies`` data frames and pongs
    have come; then read on until the server closes the connection. The
    frames, each (opcode, payload), and whether every byte was a frame."""
    data, closing = b"", replies == 0
    if closing:
        sock.sendall(frame(CLOSE, struct.pack("!H", 1000)))
    with contextlib.suppress(OSError):
        while chunk := sock.recv(65536):
            data += chunk
            frames, _ = parse_frames(data)
            if not closing and (any(op == CLOSE for op, _ in frames)
                                or len(frames) >= replies):
                closing = True
                sock.sendall(frame(CLOSE, struct.pack("!H", 1000)))
    frames, rest = parse_frames(data)
    return frames, rest == b""


TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10


@st.composite
def messages(draw):
    """A valid message, maybe in fragments: (frames, the expected echo), each
    frame the arguments of ``frame``."""
    if draw(st.booleans()):
        opcode, payload = TEXT, draw(st.text(max_size=200)).encode()
    else:
        opcode, payload = BINARY, draw(st.binary(max_size=200))
    cuts = sorted(set(draw(st.lists(st.integers(0, len(payload)), max_size=2))))
    pieces = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    frames = [(opcode if i == 0 else 0, piece, i == len(pieces) - 1, 0, True)
              for i, piece in enumerate(pieces)]
    return frames, (opcode, payload)


@st.composite
def odd_frames(draw):
    """Any frame at all, as [the arguments of ``frame``]."""
    # Mostly the frames clients send, sometimes anything.
    opcode = draw(st.one_of(st.sampled_from([0, TEXT, BINARY, CLOSE, PING, PONG]),
                            st.integers(0, 15)))
    fin = draw(st.one_of(st.just(True), st.booleans()))
    rsv = draw(st.one_of(st.just(0), st.integers(0, 7)))
    masked = draw(st.one_of(st.just(True), st.booleans()))
    payload = draw(st.one_of(st.binary(max_size=140), st.text(max_size=40).map(str.encode)))
    return [(opcode, payload, fin, rsv, masked)]


# Mostly valid messages, so that most sequences get some way before a
# refusal.
frame_sequences = st.lists(mostly(messages().map(lambda m: m[0]), odd_frames()),
                           min_size=1, max_size=5).map(lambda items: sum(items, []))


def expected_conversation(frames):
    """What RFC 6455 has the server do with ``frames`` (each the arguments
    of ``frame``): (the messages it echoes, the pongs it sends, how it
    ends, and how many of the frames it reads). It ends None if it does
    not close, "close" if the client closed first with the given payload,
    "error" if it closes for a frame it must refuse, "bad close" if that
    frame is a close frame; what follows the end is not read (nor sent:
    once it is closing, Autobahn takes any close frame for the answer to
    its own, and drops the connection without sending what is left)."""
    echoes, pongs, current = [], 0, None
    for count, (opcode, payload, fin, rsv, masked) in enumerate(frames, 1):
        # Autobahn goes on to read a frame it has refused. A refused close
        # frame (a bad header, code or reason) is then the client's answer
        # to the server's close, and it drops the connection, with the
        # server's close frame, and the echoes before it, maybe unsent.
        refused = echoes, pongs, ("bad close" if opcode == CLOSE else "error", None), count
        if rsv or not masked or opcode not in (0, TEXT, BINARY, CLOSE, PING, PONG):
            return refused
        if opcode >= CLOSE:
            if not fin or len(payload) > 125:
                return refused
            if opcode == CLOSE:
                if not valid_close(payload):
                    return refused
                return echoes, pongs, ("close", payload), count
            pongs += opcode == PING
            continue
        if (opcode == 0) != (current is not None):
            return refused  # no message to go on, or one unfinished
        current = (opcode, payload) if opcode else (current[0], current[1] + payload)
        if current[0] == TEXT and not utf8_prefix(current[1], complete=fin):
            return refused
        if fin:
            echoes.append(current)
            current = None
    return echoes, pongs, (None, None), len(frames)


# Close codes a client may send (RFC 6455 §7.4, and 1012 to 1013 as
# registered since): others are refused as a protocol error.
CLIENT_CLOSE_CODES = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013,
                      *range(3000, 5000)}


def valid_close(payload: bytes) -> bool:
    """A close frame's payload: empty, or a code a client may send and a
    UTF-8 reason."""
    if not payload:
        return True
    return (len(payload) >= 2 and struct.unpack("!H", payload[:2])[0] in CLIENT_CLOSE_CODES
            and utf8_prefix(payload[2:], complete=True))


def utf8_prefix(data: bytes, complete: bool) -> bool:
    """Whether ``data`` is UTF-8 (or, unless ``complete``, the start of it)."""
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError as exc:
        return not complete and exc.reason == "unexpected end of data"


class WebSocketFrameTests(FuzzTestCase):
    server_options = {"routing": "tests.interface_consumers.routing_without_connect"}

    def open(self):
        sock = self.connection()
        key = "dGhlIHNhbXBsZSBub25jZQ=="  # any 16 bytes, in base64
        sock.sendall(f"GET /echo/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
                     f"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
                     f"Sec-WebSocket-Key: {key}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        self.assertTrue(head.startswith(b"HTTP/1.1 101 "), head)
        return sock

    @settings(FUZZ, max_examples=150)
    @given(frames=frame_sequences, cuts=st.lists(st.integers(0, 2000), max_size=6))
    def test_every_frame_sequence_is_echoed_or_closed_with_a_documented_code(self, frames, cuts):
        echoes, pongs, (ending, client_close), read = expected_conversation(frames)
        data = b"".join(frame(*spec) for spec in frames[:read])
        with self.open() as sock:
            split_writes(sock, data, cuts)
            received, complete = converse(sock, len(echoes) + pongs if ending is None else 10**6)
        self.assertTrue(complete, received)
        data_frames = [(op, payload) for op, payload in received if op in (TEXT, BINARY)]
        closes = [payload for op, payload in received if op == CLOSE]
        if ending == "bad close" and not closes:
            closes = [struct.pack("!H", 1002)]  # dropped: the code it had sent
        self.assertEqual(len(closes), 1, received)
        code = struct.unpack("!H", closes[0][:2])[0] if closes[0] else None
        if ending in ("error", "bad close"):
            # Echoes of what came before, maybe not all (the close may
            # overtake a worker's answer), then the server's own code.
            self.assertEqual(data_frames, echoes[:len(data_frames)], frames)
            self.assertIn(code, SERVER_CLOSE_CODES, frames)
        elif ending == "close":
            self.assertEqual(data_frames, echoes[:len(data_frames)], frames)
            allowed = SERVER_CLOSE_CODES | {None, 1000}
            if len(client_close) >= 2:
                allowed.add(struct.unpack("!H", client_close[:2])[0])
            self.assertIn(code, allowed, frames)
        else:
            self.assertEqual(data_frames, echoes)
            self.assertEqual(code, 1000)
        self.assert_well()
