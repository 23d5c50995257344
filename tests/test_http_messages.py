"""HTTP to messages and back: the format every HTTP interface shares."""

import os

from django.test import SimpleTestCase

from channels.backends.encoding import MAX_MESSAGE_SIZE, encode
from channels.messages import http as http_messages
from channels.messages.http import (
    ABORT,
    BODY_CHUNK_SIZE,
    CHECKED_HEADERS_KEPT,
    BodyBuffer,
    MalformedBody,
    MalformedResponse,
    ResponseAborted,
    body_chunk,
    body_messages,
    closed_body_message,
    connection_fields,
    disconnect_message,
    request_message,
    response_chunk,
    response_messages,
    response_start,
    split_body,
    split_stream,
    streamed_response_messages,
)

HEADERS = [
    (b"Host", b"example.com"),
    (b"Cookie", b"a=1; b=two"),
    (b"X-Thing", b"caf\xe9"),
    (b"Cookie", b"c=3"),
    (b"X-Thing", b"second"),
]


class ConnectionFieldsTests(SimpleTestCase):
    def fields(self, target, headers=HEADERS, **kwargs):
        return connection_fields(target, headers, kwargs.get("client", ("10.0.0.1", 5555)),
                                 ("127.0.0.1", "8000"), kwargs.get("scheme", "http"))

    def test_all_fields(self):
        self.assertEqual(self.fields(b"/a%20b/%C3%A9?x=1&y=&x=2%20"), {
            "path": "/a b/\xe9",
            "query_string": "x=1&y=&x=2%20",
            "query": {"x": ["1", "2 "], "y": [""]},
            "headers": [["host", "example.com"], ["cookie", "a=1; b=two"],
                        ["x-thing", "caf\xe9"], ["cookie", "c=3"], ["x-thing", "second"]],
            "cookies": {"a": "1", "b": "two", "c": "3"},
            "client": ["10.0.0.1", 5555],
            "server": ["127.0.0.1", 8000],
            "scheme": "http",
        })

    def test_raw_utf8_in_query(self):
        fields = self.fields("/?q=\xe9&r=%E2%82%AC&s=%FF".encode())
        self.assertEqual(fields["query"], {"q": ["\xe9"], "r": ["\u20ac"], "s": ["\ufffd"]})
        self.assertEqual(fields["query_string"], "q=\xc3\xa9&r=%E2%82%AC&s=%FF")

    def test_path_bytes_that_are_not_utf8_stay_percent_encoded(self):
        self.assertEqual(self.fields(b"/a%FF/%C3%A9/")["path"], "/a%FF/\xe9/")
        self.assertEqual(self.fields(b"/a+b/\xc3\xa9/\xff")["path"], "/a+b/\xe9/%FF")
        self.assertEqual(self.fields(b"/plain/")["path"], "/plain/")

    def test_no_query_no_cookies_unix_socket(self):
        fields = self.fields(b"/", headers=[], client=None)
        self.assertEqual((fields["query_string"], fields["query"], fields["cookies"],
                          fields["client"]), ("", {}, {}, None))
        self.assertIsNone(self.fields(b"/", client=("", "0"))["client"])
        self.assertEqual(self.fields(b"/", client=("10.0.0.2", None))["client"],
                         ["10.0.0.2", 0])

    def test_absolute_form_target(self):
        fields = self.fields(b"http://example.com/p/?q=1")
        self.assertEqual((fields["path"], fields["query_string"]), ("/p/", "q=1"))
        self.assertEqual(self.fields(b"http://example.com")["path"], "/")

    def test_fields_travel(self):
        encode(self.fields(b"/x?y=1", scheme="wss"))


class RequestMessageTests(SimpleTestCase):
    def test_request_message(self):
        message = request_message(
            b"/up/?a=1", HEADERS, ("::1", 1), None, "https", reply_channel="!http.response.x",
            method="post", http_version="1.1", body=b"data", body_channel=None,
        )
        self.assertEqual(message["method"], "POST")
        self.assertEqual(message["path"], "/up/")
        self.assertEqual(message["server"], None)
        self.assertEqual((message["reply_channel"], message["http_version"], message["body"],
                          message["body_channel"], message["root_path"]),
                         ("!http.response.x", "1.1", b"data", None, ""))
        encode(message)

    def test_body_over_one_chunk_is_refused(self):
        with self.assertRaisesMessage(ValueError, "split_body"):
            request_message(b"/", [], None, None, "http", reply_channel="!r", method="PUT",
                            http_version="1.1", body=b"x" * (BODY_CHUNK_SIZE + 1),
                            body_channel="b")


class BodyTests(SimpleTestCase):
    def test_chunk_size_leaves_room_in_a_message(self):
        self.assertEqual(BODY_CHUNK_SIZE, 512 * 1024)
        message = {"content": b"x" * BODY_CHUNK_SIZE, "more_content": True}
        self.assertLess(len(encode(message)), MAX_MESSAGE_SIZE)

    def test_small_body_needs_no_body_channel(self):
        self.assertEqual(split_body(b"abc"), (b"abc", []))
        self.assertEqual(split_body(b""), (b"", []))
        self.assertEqual(split_body(b"x" * BODY_CHUNK_SIZE), (b"x" * BODY_CHUNK_SIZE, []))

    def test_large_body_is_cut_in_order(self):
        body = bytes(range(256)) * (5 * BODY_CHUNK_SIZE // 256) + b"tail"
        first, rest = split_body(body)
        self.assertEqual(len(first), BODY_CHUNK_SIZE)
        self.assertEqual([m["more_content"] for m in rest], [True] * 4 + [False])
        self.assertTrue(all(len(m["content"]) <= BODY_CHUNK_SIZE for m in rest))
        self.assertEqual(first + b"".join(m["content"] for m in rest), body)
        self.assertEqual(rest[-1]["content"], b"tail")

    def test_body_messages_from_uneven_reads(self):
        reads = [b"", b"a" * 10, b"b" * (BODY_CHUNK_SIZE + 3), b"", b"c"]
        messages = list(body_messages(reads))
        self.assertEqual([len(m["content"]) for m in messages], [10, BODY_CHUNK_SIZE, 3, 1])
        self.assertEqual([m["more_content"] for m in messages], [True, True, True, False])

    def test_empty_stream_still_ends(self):
        self.assertEqual(list(body_messages([])), [{"content": b"", "more_content": False}])
        self.assertEqual(list(body_messages(iter([b""]))),
                         [{"content": b"", "more_content": False}])

    def test_split_stream(self):
        self.assertEqual(split_stream(iter([b"", b"ab"])), (b"ab", None))
        self.assertEqual(split_stream(iter([])), (b"", None))
        # Reads are not joined: each after the first is a message of its own.
        first, rest = split_stream(iter([b"ab", b"", b"c"]))
        self.assertEqual((first, list(rest)), (b"ab", [{"content": b"c", "more_content": False}]))
        # A body read whole (by a middleware, say) is cut like any other.
        body = b"x" * BODY_CHUNK_SIZE + b"y" * (BODY_CHUNK_SIZE + 1)
        first, rest = split_stream([body])
        self.assertEqual(first, b"x" * BODY_CHUNK_SIZE)
        self.assertEqual([(len(m["content"]), m["more_content"]) for m in rest],
                         [(BODY_CHUNK_SIZE, True), (1, False)])

    def test_split_stream_reads_the_rest_only_when_iterated(self):
        reads = []

        def pieces():
            for piece in (b"a" * BODY_CHUNK_SIZE, b"b", b"c"):
                reads.append(piece[:1])
                yield piece

        first, rest = split_stream(pieces())
        self.assertEqual(reads, [b"a", b"b"])
        self.assertEqual([m["content"] for m in rest], [b"b", b"c"])
        self.assertEqual(reads, [b"a", b"b", b"c"])

    def test_body_chunk(self):
        self.assertEqual(body_chunk({"content": b"x", "more_content": True}), (b"x", True, False))
        self.assertTrue(body_chunk(closed_body_message()).closed)
        self.assertTrue(body_chunk({"closed": True}).closed)
        for message in [[], {"content": "x", "more_content": False}, {"content": b"x"},
                        {"content": b"x", "more_content": 1}]:
            with self.subTest(message=message), self.assertRaises(MalformedBody):
                body_chunk(message)

    def test_closed_and_disconnect(self):
        self.assertEqual(closed_body_message(),
                         {"content": b"", "more_content": False, "closed": True})
        self.assertEqual(disconnect_message("!r", "/p"), {"reply_channel": "!r", "path": "/p"})


class BodyBufferTests(SimpleTestCase):
    def test_small_body_goes_whole_into_the_request(self):
        body = BodyBuffer()
        body.add(b"ab")
        self.assertFalse(body.first_ready)
        body.add(b"c", end=True)
        self.assertTrue(body.first_ready)
        self.assertEqual(body.first_chunk(), (b"abc", False))
        self.assertIsNone(body.next_message())

    def test_exactly_one_chunk_waits_for_the_end(self):
        body = BodyBuffer()
        body.add(b"x" * BODY_CHUNK_SIZE)
        # It might all fit in http.request yet.
        self.assertFalse(body.first_ready)
        body.add(b"", end=True)
        self.assertEqual(body.first_chunk(), (b"x" * BODY_CHUNK_SIZE, False))

    def test_whole_chunks_then_the_rest(self):
        body = BodyBuffer()
        body.add(b"a" * (BODY_CHUNK_SIZE - 1))
        body.add(b"bb")
        self.assertTrue(body.first_ready)
        first, more = body.first_chunk()
        self.assertEqual((first, more, body.size), (b"a" * (BODY_CHUNK_SIZE - 1) + b"b", True, 1))
        self.assertIsNone(body.next_message())  # not a whole chunk yet
        body.add(b"c" * BODY_CHUNK_SIZE)
        self.assertTrue(body.chunk_waiting)
        self.assertEqual(body.next_message(),
                         {"content": b"b" + b"c" * (BODY_CHUNK_SIZE - 1), "more_content": True})
        self.assertFalse(body.chunk_waiting)
        body.add(b"", end=True)
        self.assertFalse(body.chunk_waiting)
        self.assertEqual(body.next_message(), {"content": b"c", "more_content": False})
        self.assertIsNone(body.next_message())

    def test_a_body_of_whole_chunks_ends_with_an_empty_message(self):
        body = BodyBuffer()
        body.add(b"a" * (2 * BODY_CHUNK_SIZE))
        self.assertEqual(body.first_chunk(), (b"a" * BODY_CHUNK_SIZE, True))
        self.assertEqual(body.next_message()["more_content"], True)
        body.add(b"", end=True)
        self.assertEqual(body.next_message(), {"content": b"", "more_content": False})

    def test_dropped(self):
        body = BodyBuffer()
        body.add(b"a" * (2 * BODY_CHUNK_SIZE))
        body.first_chunk()
        body.drop()
        body.add(b"more", end=True)
        self.assertEqual((body.size, body.next_message()), (0, None))


class ResponseMessagesTests(SimpleTestCase):
    def check(self, messages):
        """Every message is one a server accepts, and together they end."""
        start = response_start(messages[0])
        chunks = [response_chunk(m) for m in messages[1:]]
        self.assertEqual([start.more_content] + [c.more_content for c in chunks],
                         [True] * len(chunks) + [False])
        for message in messages:
            self.assertLessEqual(len(message["content"]), BODY_CHUNK_SIZE)
            encode(message)
        return start.content + b"".join(c.content for c in chunks)

    def test_small_response_is_one_message(self):
        messages = list(response_messages(200, [["Content-Type", "text/plain"]], b"hi",
                                          reason="Fine"))
        self.assertEqual(messages, [{"status": 200, "reason": "Fine",
                                     "headers": [["Content-Type", "text/plain"]],
                                     "content": b"hi", "more_content": False}])
        self.assertNotIn("reason", next(response_messages(204, [], b"")))

    def test_large_response_is_cut(self):
        content = os.urandom(2 * BODY_CHUNK_SIZE + 5)
        messages = list(response_messages(200, [], content))
        self.assertEqual(len(messages), 3)
        self.assertEqual(messages[0]["status"], 200)
        self.assertEqual(self.check(messages), content)

    def test_streamed_response(self):
        pieces = [b"one", b"", bytearray(b"x" * (BODY_CHUNK_SIZE + 1))]
        messages = list(streamed_response_messages(200, [["X-A", "1"]], iter(pieces)))
        self.assertEqual(messages[0], {"status": 200, "headers": [["X-A", "1"]],
                                       "content": b"", "more_content": True})
        self.assertEqual([len(m["content"]) for m in messages], [0, 3, BODY_CHUNK_SIZE, 1, 0])
        self.assertTrue(all(type(m["content"]) is bytes for m in messages))
        self.assertEqual(self.check(messages), b"one" + b"x" * (BODY_CHUNK_SIZE + 1))

    def test_streamed_response_sends_headers_before_the_first_piece(self):
        def pieces():
            raise AssertionError("read too early")
            yield b""  # pragma: no cover

        self.assertEqual(next(streamed_response_messages(200, [], pieces()))["status"], 200)


class ResponseTests(SimpleTestCase):
    def test_full_response(self):
        start = response_start({"status": 201, "headers": [["Content-Type", "text/plain"],
                                                           ("X-A", "caf\xe9")],
                                "content": b"hi"})
        self.assertEqual(start.status, 201)
        self.assertEqual(start.reason, "Created")
        self.assertEqual(start.headers, [(b"Content-Type", b"text/plain"), (b"X-A", b"caf\xe9")])
        self.assertEqual((start.content, start.more_content), (b"hi", False))

    def test_defaults_and_reason(self):
        start = response_start({"status": 599, "reason": "Odd"})
        self.assertEqual(start, (599, "Odd", [], b"", False))
        self.assertEqual(response_start({"status": 599}).reason, "Unknown Status Code")

    def test_streaming_start_and_chunks(self):
        self.assertTrue(response_start({"status": 200, "more_content": True}).more_content)
        self.assertEqual(response_chunk({"content": b"x", "more_content": True}), (b"x", True))
        self.assertEqual(response_chunk({"content": b"y"}), (b"y", False))

    def test_malformed_responses(self):
        bad = [
            ("not a dict", "must be a dict"),
            ({}, "status"),
            ({"status": "200"}, "status"),
            ({"status": True}, "status"),
            ({"status": 42}, "status"),
            ({"status": 200, "content": "text"}, "content must be bytes"),
            ({"status": 200, "more_content": 1}, "more_content must be a bool"),
            ({"status": 200, "headers": {"a": "b"}}, "headers must be a list"),
            ({"status": 200, "headers": [["a"]]}, "pair of str"),
            ({"status": 200, "headers": [[b"a", b"b"]]}, "pair of str"),
            ({"status": 200, "headers": [["bad name", "v"]]}, "invalid response header name"),
            ({"status": 200, "headers": [["X", "a\r\nSet-Cookie: x"]]}, "line break"),
            ({"status": 200, "headers": [["X", "\u20ac"]]}, "latin-1"),
            ({"status": 200, "reason": "a\nb"}, "reason"),
        ]
        for message, error in bad:
            with self.subTest(message=message), self.assertRaisesMessage(MalformedResponse, error):
                response_start(message)
        with self.assertRaisesMessage(ResponseAborted, "aborted"):
            response_chunk(ABORT)
        self.assertTrue(issubclass(ResponseAborted, MalformedResponse))
        for message in ["x", {"content": 1}, {"more_content": "yes"}]:
            with self.subTest(message=message), self.assertRaises(MalformedResponse):
                response_chunk(message)
        self.assertTrue(issubclass(MalformedResponse, ValueError))

    def testchecked_headers_are_kept_within_bounds(self):
        # Checked once, then looked up: the same answer either way, and a
        # bad header is refused however many good ones were seen.
        message = {"status": 200, "headers": [["X-A", "1"], ("X-B", "caf\xe9")]}
        self.assertEqual(response_start(message).headers, response_start(message).headers)
        for name in ("X A", "X-A\n"):
            with self.assertRaises(MalformedResponse):
                response_start({"status": 200, "headers": [[name, "1"]]})
        with self.assertRaisesMessage(MalformedResponse, "pair of str"):
            response_start({"status": 200, "headers": ["ab"]})
        for number in range(CHECKED_HEADERS_KEPT * 2):
            response_start({"status": 200, "headers": [["Set-Cookie", f"s={number}"]]})
        self.assertLessEqual(http_messages.checked_header.cache_info().currsize,
                             CHECKED_HEADERS_KEPT)
