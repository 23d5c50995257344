"""The simple exchange read and written without h11
(``channels.interfaces.simple_http``) against h11 itself: whatever
``read_simple`` accepts, h11 reads as the same request, with no body and
the connection kept alive; whatever ``write_simple`` writes, h11 writes
byte for byte, and h11 would refuse nothing of it. Generated inputs
(hypothesis, as in test_interface_fuzz) and the cases that must stay
with h11."""

import h11
from django.test import SimpleTestCase
from hypothesis import given, settings
from hypothesis import strategies as st

from channels.interfaces import simple_http
from channels.interfaces.simple_http import read_simple, write_simple
from channels.messages.http import MalformedResponse, response_start
from tests.test_interface_fuzz import header_name, header_value, method, mostly, target, version

EXAMPLES = settings(derandomize=True, database=None, deadline=None, max_examples=500)

WRK = b"GET /hello/ HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"
BROWSER = (b"GET /a/?b=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: Mozilla/5.0 (X11)\r\n"
           b"Accept: text/html,*/*;q=0.8\r\nConnection: keep-alive\r\nCookie: a=1; b=2\r\n\r\n")
separator = mostly(st.just(b": "), st.sampled_from([b":", b" : ", b":\t", b" :", b": \t"]))
line_end = mostly(st.just(b"\r\n"), st.sampled_from([b"\n", b"\r", b"\r\n "]))


@st.composite
def request_heads(draw):
    """Heads mostly near the simple ones, in one read, sometimes with more
    after them."""
    lines = [draw(method) + b" " + draw(target) + b" " + draw(version)]
    if draw(mostly(st.just(True), st.just(False))):
        lines.append(b"Host: localhost")
    for _ in range(draw(st.integers(0, 5))):
        lines.append(draw(header_name) + draw(separator) + draw(header_value))
    head = draw(line_end).join(lines) + b"\r\n\r\n"
    return head + draw(mostly(st.just(b""), st.sampled_from([b"\r\n", b"GET / HTTP/1.1\r\n"])))


def h11_reads(data):
    """The events h11 reads from ``data`` up to NEED_DATA, and its connection."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    events = []
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return events, conn
        events.append(event)


def h11_writes(request, start, with_length):
    """What h11 writes of ``start`` answering ``request`` as the server's
    Request.on_reply has it write, and its connection afterwards."""
    _, conn = h11_reads(request)
    method = request.split(b" ", 1)[0]
    headers = start.headers
    if with_length:
        headers = [*headers, (b"content-length", str(len(start.content)).encode())]
    data = conn.send(h11.Response(status_code=start.status, headers=headers,
                                  reason=start.reason.encode("latin-1")))
    if start.content and method != b"HEAD":
        data += conn.send(h11.Data(data=start.content))
    data += conn.send(h11.EndOfMessage())
    return data, conn


class ReadSimpleTests(SimpleTestCase):
    def test_common_requests_are_simple(self):
        request = read_simple(WRK)
        self.assertEqual(request, (b"GET", b"/hello/", b"1.1", [(b"host", b"127.0.0.1:8000")]))
        self.assertEqual(read_simple(BROWSER).headers[3], (b"connection", b"keep-alive"))

    def test_what_h11_must_read(self):
        host = b"Host: x\r\n"
        for data in [
            b"POST / HTTP/1.1\r\n" + host + b"Content-Length: 0\r\n\r\n",
            b"POST / HTTP/1.1\r\n" + host + b"Transfer-Encoding: chunked\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"Expect: 100-continue\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"Upgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"Connection: close\r\n\r\n",
            b"GET / HTTP/1.0\r\n" + host + b"\r\n",
            b"GET / HTTP/1.1\r\n\r\n",  # no Host
            b"GET / HTTP/1.1\r\n" + host + host + b"\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"X-A: 1\r\n folded\r\n\r\n",
            b"GET / HTTP/1.1\n" + host + b"\r\n",
            b"\r\nGET / HTTP/1.1\r\n" + host + b"\r\n",
            b"GET / HTTP/1.1\r\n" + host + b"X-A: \x01\r\n\r\n",
            WRK + WRK,  # pipelined
            WRK[:-2],  # not all there yet
        ]:
            with self.subTest(data=data):
                self.assertIsNone(read_simple(data))

    @settings(EXAMPLES)
    @given(data=request_heads())
    def test_h11_reads_a_simple_request_the_same_way(self, data):
        request = read_simple(data)
        if request is None:
            return
        events, conn = h11_reads(data)
        self.assertEqual([type(event) for event in events], [h11.Request, h11.EndOfMessage])
        event = events[0]
        self.assertEqual((event.method, event.target, event.http_version, list(event.headers)),
                         tuple(request))
        self.assertFalse(conn.client_is_waiting_for_100_continue)
        conn.send(h11.Response(status_code=200, headers=[(b"content-length", b"0")]))
        conn.send(h11.EndOfMessage())
        self.assertEqual(conn.states, {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE})


header_values = mostly(
    st.sampled_from(["text/plain", "14", "0", "DENY", "a, b", "", "a\tb", "\xe9", "a  b"]),
    st.one_of(st.sampled_from([" x", "x ", "\x01", "014", "1,1", "chunked", "close"]),
              st.text(st.characters(codec="latin-1", exclude_characters="\r\n\0"),
                      max_size=8)))
header_names = mostly(
    st.sampled_from(["Content-Type", "Vary", "X-A", "Set-Cookie"]),
    st.sampled_from(["Content-Length", "content-length", "Transfer-Encoding", "Connection",
                     "Host"]))


@st.composite
def response_starts(draw):
    content = draw(st.sampled_from([b"", b"Hello, world!\n", b"x" * 3000]))
    headers = [[draw(header_names), draw(header_values)] for _ in range(draw(st.integers(0, 4)))]
    if draw(st.booleans()):
        headers.append(["Content-Length", str(len(content))])
    status = mostly(st.sampled_from([200, 201, 404, 999]), st.sampled_from([204, 304, 101, 199]))
    message = {"status": draw(status),
               "headers": headers, "content": content,
               "more_content": draw(mostly(st.just(False), st.just(True)))}
    reason = draw(mostly(st.sampled_from([None, "OK", "Fine Thanks", "\xe9", "a\tb"]),
                         st.sampled_from(["\x01", "\u20ac", ""])))
    if reason is not None:
        message["reason"] = reason
    return message


class WriteSimpleTests(SimpleTestCase):
    def test_a_django_response(self):
        start = response_start({"status": 200, "headers": [["Content-Type", "text/plain"],
                                                          ["Content-Length", "14"]],
                                "content": b"Hello, world!\n"})
        self.assertEqual(write_simple(start, b"GET"),
                         b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
                         b"\r\nHello, world!\n")
        self.assertEqual(write_simple(start, b"HEAD"),
                         b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n"
                         b"\r\n")

    def test_header_lines_are_kept_within_bounds(self):
        start = response_start({"status": 200, "headers": [["Content-Length", "0"], ["X", "1"]]})
        self.assertEqual(write_simple(start, b"GET"), write_simple(start, b"GET"))
        self.assertIsNone(write_simple(response_start(
            {"status": 200, "headers": [["Content-Length", "0"]], "content": b"x"}), b"GET"))
        for number in range(simple_http.HEADER_LINES_KEPT * 2):
            self.assertIsNotNone(write_simple(response_start(
                {"status": 200, "headers": [["Set-Cookie", f"s={number}"]]}), b"GET"))
        self.assertLessEqual(simple_http.header_line.cache_info().currsize,
                             simple_http.HEADER_LINES_KEPT)

    def test_what_h11_must_write(self):
        for message in [
            {"status": 200, "content": b"x", "more_content": True},  # streamed
            {"status": 204},
            {"status": 304},
            {"status": 101},
            {"status": 200, "headers": [["Content-Length", "2"]], "content": b"x"},
            {"status": 200, "headers": [["Transfer-Encoding", "chunked"]]},
            {"status": 200, "headers": [["Connection", "close"]]},
            {"status": 200, "headers": [["X-A", " leading space"]]},
            {"status": 200, "reason": "\u20ac"},
        ]:
            with self.subTest(message=message):
                self.assertIsNone(write_simple(response_start(message), b"GET"))

    @settings(EXAMPLES)
    @given(message=response_starts(), method=st.sampled_from([b"GET", b"HEAD", b"POST"]))
    def test_h11_writes_the_same_bytes(self, message, method):
        try:
            start = response_start(message)
            written = write_simple(start, method)
        except MalformedResponse:
            return  # answered 500 before either writes
        request = method + b" / HTTP/1.1\r\nHost: x\r\n\r\n"
        with_length = not start.more_content and not any(
            name.lower() in (b"content-length", b"transfer-encoding") for name, _ in start.headers)
        try:
            expected, conn = h11_writes(request, start, with_length)
        except (h11.LocalProtocolError, UnicodeEncodeError):
            self.assertIsNone(written)
            return
        if written is not None:
            self.assertEqual(written, expected)
            self.assertEqual(conn.states, {h11.CLIENT: h11.DONE, h11.SERVER: h11.DONE})
