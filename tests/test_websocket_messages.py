"""WebSocket to messages and back: what every WebSocket server sends and
how it reads the replies (docs/message-standards.rst)."""

from django.test import SimpleTestCase

from channels.backends.encoding import encode
from channels.messages.http import connection_fields
from channels.messages.websocket import (
    InvalidCloseCode,
    accept_message,
    close_code,
    close_message,
    connect_message,
    disconnect_message,
    handshake_decision,
    keepalive_message,
    receive_message,
)


class ConnectionMessagesTests(SimpleTestCase):
    def test_connect_is_the_handshake_numbered_zero(self):
        fields = connection_fields(b"/chat/?room=1", [(b"Cookie", b"a=1")],
                                   ("10.0.0.1", 5), ("127.0.0.1", 80), "wss")
        message = connect_message(fields, "!websocket.send.x")
        self.assertEqual(message, {**fields, "reply_channel": "!websocket.send.x", "order": 0})
        self.assertEqual((message["path"], message["query"], message["cookies"],
                          message["scheme"]), ("/chat/", {"room": ["1"]}, {"a": "1"}, "wss"))
        self.assertNotIn("order", fields)  # the handshake's fields stay as they were
        encode(message)

    def test_receive_text_and_bytes(self):
        self.assertEqual(receive_message("!r", "/p", 3, "caf\xe9".encode(), False),
                         {"reply_channel": "!r", "path": "/p", "order": 3, "text": "caf\xe9"})
        self.assertEqual(receive_message("!r", "/p", 4, b"\x00\xff", True),
                         {"reply_channel": "!r", "path": "/p", "order": 4, "bytes": b"\x00\xff"})

    def test_keepalive(self):
        self.assertEqual(keepalive_message("!r", "/p"), {"reply_channel": "!r", "path": "/p"})

    def test_disconnect_code_or_1006(self):
        self.assertEqual(disconnect_message("!r", "/p", 5, 1001),
                         {"reply_channel": "!r", "path": "/p", "order": 5, "code": 1001})
        self.assertEqual(disconnect_message("!r", "/p", 1, None)["code"], 1006)
        self.assertEqual(disconnect_message("!r", "/p", 1, 0)["code"], 1006)


class ReplyTests(SimpleTestCase):
    def test_worker_decisions(self):
        self.assertEqual(accept_message(), {"accept": True})
        self.assertEqual(close_message(), {"close": True})
        self.assertEqual(close_message(4000), {"close": 4000})
        self.assertIs(handshake_decision(accept_message()), True)
        self.assertIs(handshake_decision(close_message()), False)

    def test_handshake_decisions(self):
        cases = [
            ({"accept": True}, True),
            ({"accept": False}, False),
            ({"accept": False, "text": "hi"}, False),
            ({"text": "hi"}, True),
            ({"bytes": b""}, True),
            ({"text": "bye", "close": True}, True),
            ({"close": True}, False),
            ({"close": 4001}, False),
            ({"close": False, "accept": True}, True),
            ({"close": False}, None),
            ({"close": 0}, None),
            ({}, None),
            ({"accept": None, "text": None}, None),
        ]
        for content, decision in cases:
            with self.subTest(content=content):
                self.assertIs(handshake_decision(content), decision)

    def test_close_codes(self):
        for close, code in [(None, None), (False, None), (0, None), (True, 1000),
                            (1000, 1000), (3000, 3000), (4999, 4999)]:
            with self.subTest(close=close):
                self.assertEqual(close_code(close), code)
        # 1 (not True) and the codes reserved to the protocol are not an
        # application's to send.
        for close in [1, 1001, 1006, 1011, 2999, 5000, "1000", 1000.0]:
            with self.subTest(close=close), self.assertRaises(InvalidCloseCode):
                close_code(close)
