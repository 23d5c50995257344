"""Whole small messages read without Autobahn's parser
(``channels.interfaces.simple_frames``) against Autobahn itself: the
server's WebSocket protocol, opened over a ``StringTransport``, is fed
generated frames (valid and invalid text, binary, oversize, fragments,
pings, pongs, closes, bad RSV bits and opcodes, unmasked frames, long
length forms) split at arbitrary points into reads, and must deliver the
same messages, write the same bytes (pongs, close frames and their codes)
and end in the same state as the same protocol with every frame left to
Autobahn. Generated inputs with hypothesis, as in test_simple_http."""

import itertools
import os

from autobahn.websocket.utf8validator import Utf8Validator
from autobahn.websocket.xormasker import create_xor_masker
from django.test import SimpleTestCase
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from channels.backends.memory import InMemoryChannelBackend
from channels.interfaces.config import ServerConfig
from channels.interfaces.server import ChannelServer
from channels.interfaces.simple_frames import INT_UNMASK_MAX, read_simple_frames
from channels.interfaces.websocket_protocol import ChannelWebSocketProtocol
from tests.support.interface_server import ROUTING
from tests.test_interface_fuzz import mostly

EXAMPLES = settings(derandomize=True, database=None, deadline=None, max_examples=500)

LIMIT = 300  # MAX_MESSAGE_SIZE here: within the 16-bit length form
HANDSHAKE = (b"GET /echo/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n"
             b"Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
             b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
# Text payloads that Python's codec and Autobahn's validator must judge
# alike: overlong, surrogate, above U+10FFFF, truncated, noncharacters.
UTF8_EDGES = [b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xed\xbf\xbf",
              b"\xed\x9f\xbf", b"\xf4\x8f\xbf\xbf", b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80",
              b"\xe2\x82", b"\xe2\x82\xac", b"\xef\xbf\xbe", b"\xef\xbb\xbf", b"\xff", b"\x80",
              b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80", b"\x00", b"\x7f"]
BYE = b"bye"  # the application closes the socket when it reads this


def frame(opcode, payload, fin=True, rsv=0, masked=True, form=None, mask=b"\x12\x34\x56\x78"):
    """A client frame; ``form`` the length's encoding (7, 16 or 64 bits),
    the smallest by default."""
    length = len(payload)
    if form is None:
        form = 7 if length < 126 else 16 if length < 65536 else 64
    head = bytes([fin << 7 | rsv << 4 | opcode])
    bit = 0x80 if masked else 0
    if form == 7:
        head += bytes([bit | length])
    elif form == 16:
        head += bytes([bit | 126]) + length.to_bytes(2, "big")
    else:
        head += bytes([bit | 127]) + length.to_bytes(8, "big")
    if not masked:
        return head + payload
    return head + mask + bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


class Recorder(ChannelWebSocketProtocol):
    """The server's protocol, with what the application would see recorded
    instead of sent to the layer; it accepts every handshake."""

    def onConnect(self, request):
        return None

    def onMessage(self, payload, isBinary):
        # Autobahn calls onMessage from inside its frame (current_frame).
        self.messages.append((payload, isBinary, self.current_frame is None))
        if payload == BYE:
            self.sendClose(1000)

    def onClose(self, wasClean, code, reason):
        self.closed = (wasClean, code, reason)


def opened(fast=True, max_message_size=LIMIT, extra=b""):
    """An open socket's protocol and its transport, ``extra`` header lines
    in its handshake; with ``fast`` false, every frame goes to Autobahn."""
    clock = Clock()
    server_config = ServerConfig.from_settings(max_message_size=max_message_size)
    server = ChannelServer(InMemoryChannelBackend(routing=ROUTING), clock, server_config,
                           clock=clock)
    # No timers on the global reactor: the test ends where Autobahn would wait.
    server.ws_factory.setProtocolOptions(openHandshakeTimeout=0, closeHandshakeTimeout=0)
    protocol = Recorder(server, {"path": "/echo/", "client": ["127.0.0.1", 1], "scheme": "ws"})
    protocol.messages = []
    protocol.closed = None
    protocol.factory = server.ws_factory
    transport = StringTransport()
    protocol.makeConnection(transport)
    protocol.dataReceived(HANDSHAKE[:-2] + extra + b"\r\n")
    assert protocol.state == protocol.STATE_OPEN, transport.value()
    transport.clear()
    if not fast:
        protocol.frame_limit = None
    return protocol, transport


def outcome(protocol, transport):
    """All that the client and the application can tell apart."""
    return {
        "messages": [(payload, binary) for payload, binary, _ in protocol.messages],
        "written": transport.value(),
        "disconnecting": transport.disconnecting,
        "state": protocol.state,
        "close": (protocol.closedByMe, protocol.failedByMe, protocol.droppedByMe,
                  protocol.localCloseCode, protocol.localCloseReason, protocol.remoteCloseCode,
                  protocol.remoteCloseReason, protocol.wasClean, protocol.closed),
        "traffic": vars(protocol.trafficStats),
    }


def unmasked(payload, mask):
    return bytes(byte ^ mask[i % 4] for i, byte in enumerate(payload))


texts = st.one_of(
    st.sampled_from([b"", b"hello", BYE, "caf\xe9 \u20ac \U0001f600".encode()]),
    st.text(st.characters(codec="utf-8"), max_size=140).map(str.encode),
    st.lists(st.sampled_from(UTF8_EDGES + [b"a"]), max_size=6).map(b"".join),
    st.binary(max_size=8))
binaries = st.one_of(st.sampled_from([b"", b"\x00\xff"]), st.binary(max_size=LIMIT + 20),
                     st.integers(LIMIT - 2, LIMIT + 2).map(lambda size: b"\xaa" * size))
masks = st.binary(min_size=4, max_size=4)


@st.composite
def messages(draw):
    """One message's frames: mostly whole, sometimes fragmented, with a
    control frame between its fragments."""
    opcode = draw(st.sampled_from([1, 2]))
    payload = draw(texts if opcode == 1 else binaries)
    if draw(mostly(st.just(True), st.just(False))):
        return [(opcode, payload, True)]
    cut = draw(st.integers(0, len(payload)))
    middle = [(9, b"ping", True)] if draw(st.booleans()) else []
    # Mostly a continuation; else a new message, which Autobahn refuses.
    then = draw(mostly(st.just(0), st.sampled_from([1, 2])))
    return [(opcode, payload[:cut], False), *middle, (then, payload[cut:], True)]


@st.composite
def frames(draw):
    """A message's frames, mostly fine, sometimes a frame with something
    wrong in its head."""
    kind = draw(mostly(st.just("message"), st.sampled_from(
        ["ping", "pong", "close", "bad close", "long ping", "odd head", "continuation"])))
    if kind == "message":
        parts = draw(messages())
    elif kind in ("ping", "pong"):
        parts = [(9 if kind == "ping" else 10, draw(st.binary(max_size=8)), True)]
    elif kind == "close":
        parts = [(8, b"\x03\xe8" + draw(st.sampled_from([b"", b"done", b"\xff"])), True)]
    elif kind == "bad close":
        parts = [(8, b"\x03", True)]
    elif kind == "long ping":
        parts = [(9, b"p" * 126, True)]
    elif kind == "continuation":
        parts = [(0, b"stray", True)]
    else:
        parts = [(draw(st.integers(0, 15)), draw(texts), draw(st.booleans()))]
    data = []
    for opcode, payload, fin in parts:
        rsv = draw(mostly(st.just(0), st.integers(0, 7)))
        masked = draw(mostly(st.just(True), st.booleans()))
        forms = [7, 16, 64] if len(payload) < 126 else [16, 64]
        form = draw(mostly(st.just(None), st.sampled_from(forms)))
        data.append(frame(opcode, payload, fin, rsv, masked, form, draw(masks)))
    return data


@st.composite
def reads(draw):
    """Frames one after the other, split into reads at some of the frames'
    ends (as a client's writes arrive) and at arbitrary points."""
    parts = [part for group in draw(st.lists(frames(), min_size=1, max_size=5))
             for part in group]
    stream = b"".join(parts)
    cuts = set(draw(st.sets(st.integers(1, max(1, len(stream) - 1)), max_size=3)))
    end = 0
    for part in parts:
        end += len(part)
        if draw(st.booleans()):
            cuts.add(end)
    bounds = [0, *sorted(cut for cut in cuts if 0 < cut < len(stream)), len(stream)]
    return [stream[start:end] for start, end in itertools.pairwise(bounds)]


class ReadSimpleFramesTests(SimpleTestCase):
    def test_common_frames_are_simple(self):
        data = (frame(1, b"hello") + frame(2, b"\x00\x01") + frame(1, b"") +
                frame(1, "\u20ac".encode() * 50) + frame(2, b"x" * 300))
        taken = read_simple_frames(data, LIMIT)
        self.assertEqual([(payload, binary) for payload, binary, _ in taken],
                         [(b"hello", False), (b"\x00\x01", True), (b"", False),
                          ("\u20ac".encode() * 50, False), (b"x" * 300, True)])
        self.assertEqual(taken[-1][2], len(data))

    def test_what_autobahn_must_read(self):
        for data in [
            frame(1, b"hi", fin=False),
            frame(0, b"hi"),
            frame(1, b"hi", rsv=4),  # compressed, with no extension
            frame(1, b"hi", rsv=1),
            frame(3, b"hi"),
            frame(9, b"hi"),
            frame(10, b""),
            frame(8, b"\x03\xe8"),
            frame(1, b"hi", masked=False),
            frame(1, b"hi", form=16),  # not the minimal form
            frame(1, b"hi", form=64),
            frame(2, b"x" * 70000),
            frame(2, b"x" * (LIMIT + 1)),
            frame(1, b"\xed\xa0\x80"),  # a surrogate
            frame(1, b"\xe2\x82"),  # ends within a code point
            frame(1, b"hello")[:-1],  # not all here yet
            frame(1, b"x" * 200)[:3],
            b"\x81",
        ]:
            with self.subTest(data=data[:12]):
                self.assertEqual(read_simple_frames(data, LIMIT), [])
                self.assertEqual(read_simple_frames(frame(1, b"a") + data, LIMIT),
                                 [(b"a", False, 7)])

    def test_unmasked_as_autobahn_unmasks(self):
        mask = os.urandom(4)
        for size in [1, 3, 4, 5, 125, 126, 1000, INT_UNMASK_MAX - 1, INT_UNMASK_MAX,
                     INT_UNMASK_MAX + 1, 5000, 65535]:
            payload = os.urandom(size)
            with self.subTest(size=size):
                ((taken, _, _),) = read_simple_frames(frame(2, payload, mask=mask), 65535)
                self.assertEqual(taken, payload)
                self.assertEqual(create_xor_masker(mask, size).process(unmasked(payload, mask)),
                                 payload)

    @settings(EXAMPLES)
    @given(data=st.lists(st.one_of(st.sampled_from(UTF8_EDGES), st.binary(max_size=3)),
                         max_size=6).map(b"".join))
    def test_python_codec_refuses_what_autobahn_validator_refuses(self, data):
        validator = Utf8Validator()
        valid, ended, _, _ = validator.validate(data)
        try:
            data.decode("utf-8")
            decoded = True
        except UnicodeDecodeError:
            decoded = False
        self.assertEqual(decoded, valid and ended)


class AgainstAutobahnTests(SimpleTestCase):
    def feed(self, chunks, fast):
        protocol, transport = opened(fast)
        for chunk in chunks:
            protocol.dataReceived(chunk)
        return protocol, transport

    def test_messages_in_one_read_skip_autobahn(self):
        data = frame(1, b"one") + frame(2, b"two") + frame(9, b"") + frame(1, b"three")
        protocol, transport = self.feed([data], fast=True)
        self.assertEqual(protocol.messages, [(b"one", False, True), (b"two", True, True),
                                             (b"three", False, False)])
        self.assertEqual(transport.value(), b"\x8a\x00")  # Autobahn's pong
        reference, _ = self.feed([data], fast=False)
        self.assertEqual(outcome(protocol, transport), outcome(reference, reference.transport))

    def test_application_closing_hands_the_rest_to_autobahn(self):
        data = frame(1, b"one") + frame(1, BYE) + frame(1, b"after") + frame(1, b"\xff")
        protocol, transport = self.feed([data], fast=True)
        # Autobahn still reads messages after sending a close; invalid text
        # then fails the socket (it has sent its close: nothing more written).
        self.assertEqual([fast for _, _, fast in protocol.messages], [True, True, False])
        reference, _ = self.feed([data], fast=False)
        self.assertEqual(outcome(protocol, transport), outcome(reference, reference.transport))

    def test_no_fast_path_with_an_extension(self):
        protocol, _ = opened()
        self.assertEqual(protocol.frame_limit, LIMIT)
        protocol, _ = opened(max_message_size=10 ** 6)
        self.assertEqual(protocol.frame_limit, 0xFFFF)
        protocol, _ = opened(extra=b"Sec-WebSocket-Extensions: permessage-deflate\r\n")
        self.assertIsNotNone(protocol._perMessageCompress)
        self.assertIsNone(protocol.frame_limit)
        protocol.dataReceived(frame(1, b"hi"))
        self.assertEqual(protocol.messages, [(b"hi", False, False)])

    @settings(EXAMPLES)
    @given(chunks=reads())
    def test_same_as_autobahn_alone(self, chunks):
        protocol, transport = self.feed(chunks, fast=True)
        reference, reference_transport = self.feed(chunks, fast=False)
        self.assertEqual(outcome(protocol, transport),
                         outcome(reference, reference_transport))
