"""channels.streams: a Demultiplexer runs each stream's consumer with the
payload and a reply helper, and answers frames it cannot route without
losing the socket."""

import json

from django.test import SimpleTestCase, override_settings

from channels import Channel
from channels.backends.memory import InMemoryChannelBackend
from channels.decorators import enforce_ordering
from channels.message import Message
from channels.streams import MAX_STREAM_NAME, Demultiplexer, Stream
from channels.testing import ChannelTestCase

ROUTING = {"default": {"BACKEND": "channels.backends.memory.InMemoryChannelBackend",
                       "ROUTING": "tests.docs_examples.streams.channel_routing"}}


class Socket:
    """One connection's websocket.receive messages, numbered."""

    def __init__(self, case):
        self.case = case
        self.reply_channel = Channel.new_name("!websocket.send")
        self.order = 0

    def send(self, **frame):
        self.order += 1
        self.case.send_and_consume("websocket.receive", {
            "reply_channel": self.reply_channel, "path": "/ws/", "order": self.order,
            **frame})

    def send_json(self, value):
        self.send(text=json.dumps(value))

    def received(self):
        found = []
        while (message := self.case.get_next_message(self.reply_channel)) is not None:
            found.append(json.loads(message["text"]))
        return found


@override_settings(CHANNEL_BACKENDS=ROUTING)
class DemultiplexerTests(ChannelTestCase):
    def test_each_stream_runs_its_consumer_and_replies_on_it(self):
        socket = Socket(self)
        socket.send_json({"stream": "echo", "payload": {"a": [1, "b"]}})
        socket.send_json({"stream": "count", "payload": "x"})
        socket.send_json({"stream": "count", "payload": None})
        self.assertEqual(socket.received(), [
            {"stream": "echo", "payload": {"a": [1, "b"]}},
            {"stream": "count", "payload": {"count": 1, "last": "x"}},
            {"stream": "count", "payload": {"count": 2, "last": None}},
        ])

    def test_a_stream_broadcasts_to_a_group(self):
        alice, bob = Socket(self), Socket(self)
        alice.send_json({"stream": "count", "payload": "from alice"})
        bob.send_json({"stream": "count", "payload": "from bob"})
        # The connections count separately; both hear both.
        self.assertEqual(alice.received(), [
            {"stream": "count", "payload": {"count": 1, "last": "from alice"}},
            {"stream": "count", "payload": {"count": 1, "last": "from bob"}}])
        self.assertEqual(len(bob.received()), 1)

    def test_bad_frames_are_answered_and_the_socket_goes_on(self):
        socket = Socket(self)
        long_name = "s" * (MAX_STREAM_NAME + 1)
        bad = [
            ({"bytes": b"\x00"}, None, "a binary frame: streams are JSON text frames"),
            ({"text": "{not json"}, None, "not JSON"),
            ({"text": "[" * 200_000 + "]" * 200_000}, None, "not JSON"),
            ({"text": "[1, 2]"}, None, 'not a stream envelope {"stream": ..., "payload": ...}'),
            ({"text": '{"stream": 3, "payload": 1}'}, None,
             'not a stream envelope {"stream": ..., "payload": ...}'),
            ({"text": '{"stream": "echo"}'}, "echo", "no payload"),
            ({"text": '{"stream": "nowhere", "payload": 1}'}, "nowhere", "no such stream"),
            ({"text": json.dumps({"stream": long_name, "payload": 1})},
             long_name[:MAX_STREAM_NAME], "no such stream"),
        ]
        with self.assertLogs("channels.streams", "WARNING") as logs:
            for frame, _, _ in bad:
                socket.send(**frame)
        self.assertEqual(socket.received(), [{"stream": stream, "error": why}
                                             for _, stream, why in bad])
        self.assertEqual(len(logs.records), len(bad))  # once each
        self.assertIn(socket.reply_channel, logs.output[0])
        socket.send_json({"stream": "echo", "payload": "still here"})
        self.assertEqual(socket.received(), [{"stream": "echo", "payload": "still here"}])


class StreamTests(SimpleTestCase):
    def test_frame_is_one_compact_text_frame(self):
        self.assertEqual(Stream("chat").frame({"text": "hé"}),
                         {"text": '{"stream":"chat","payload":{"text":"h\\u00e9"}}'})

    def test_names_are_checked(self):
        for name in ("", "s" * (MAX_STREAM_NAME + 1), None, 3):
            with self.assertRaises(ValueError):
                Stream(name)
            with self.assertRaises(ValueError):
                Demultiplexer({name: print})
        with self.assertRaisesRegex(TypeError, "not callable"):
            Demultiplexer({"chat": "chat.consumers.say"})

    def test_refuses_the_sockets_own_messages(self):
        demultiplexer = Demultiplexer({"echo": print})
        self.assertEqual(repr(demultiplexer), "<Demultiplexer(echo)>")
        # Named in logs, also through decorators.
        decorated = enforce_ordering(Demultiplexer({"a": print, "b": print}))
        self.assertEqual(decorated.__qualname__, "Demultiplexer(a, b)")
        connect = Message({"reply_channel": Channel.new_name("!websocket.send"), "path": "/",
                           "order": 0}, "websocket.connect", InMemoryChannelBackend())
        with self.assertRaisesRegex(TypeError, "route the socket's connect and disconnect"):
            demultiplexer(connect)
