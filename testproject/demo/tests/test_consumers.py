import json

from chat.consumers import MESSAGES_CHANNEL, room_presence
from chat.models import HISTORY_LENGTH, MAX_TEXT_LENGTH, Message, Room
from django.contrib.sessions.models import Session

from channels import Group, channel_backends
from channels.testing import ChannelTestCase
from demo.tests.helpers import Socket, chat_payloads, fast_passwords, make_user, stream_payloads


def texts(frames):
    return [payload["text"] for payload in chat_payloads(frames)]


def presence(frames):
    """The presence messages among ``frames``."""
    return stream_payloads(frames, "presence")


@fast_passwords
class ChatConsumerTests(ChannelTestCase):
    def setUp(self):
        self.alice = make_user("alice")
        self.bob = make_user("bob")
        self.room = Room.objects.create(name="lobby")

    def join(self, user, room="lobby"):
        socket = Socket.logged_in(self, user, f"/ws/chat/{room}/")
        socket.connect()
        return socket

    def say(self, socket, text):
        """Type ``text`` and let the chat.messages consumer save it."""
        socket.say(text)
        self.consume(MESSAGES_CHANNEL)

    def test_logged_in_user_is_accepted_and_joins_the_room(self):
        socket = self.join(self.alice)
        self.assertEqual(socket.received()[0], {"accept": True})
        self.assertEqual(Group("chat-lobby").channels(), [socket.reply_channel])

    def test_anonymous_socket_is_refused(self):
        socket = Socket(self, "/ws/chat/lobby/")
        socket.connect()
        self.assertEqual(socket.received()[0], {"accept": False})
        self.assertEqual(Group("chat-lobby").channels(), [])
        self.assertFalse(Session.objects.exists())  # none kept for it

    def test_unknown_session_cookie_is_refused(self):
        socket = Socket(self, "/ws/chat/lobby/", {"sessionid": "no-such-session"})
        socket.connect()
        self.assertEqual(socket.received()[0], {"accept": False})

    def test_missing_room_is_refused(self):
        socket = self.join(self.alice, room="nowhere")
        self.assertEqual(socket.received()[0], {"accept": False})

    def test_unknown_path_is_refused(self):
        socket = Socket.logged_in(self, self.alice, "/ws/elsewhere/")
        socket.connect()
        self.assertEqual(socket.received()[0], {"accept": False})

    def test_message_is_saved_then_broadcast_to_everyone_in_the_room(self):
        alice, bob = self.join(self.alice), self.join(self.bob)
        alice.received(), bob.received()
        self.say(alice, "  hello bob ")
        saved = Message.objects.get()
        self.assertEqual((saved.user, saved.room, saved.text), (self.alice, self.room, "hello bob"))
        for socket in (alice, bob):
            frames = socket.received()
            self.assertEqual(chat_payloads(frames), [saved.as_json()])
            self.assertEqual(chat_payloads(frames)[0]["user"], "alice")

    def test_other_rooms_do_not_hear_it(self):
        Room.objects.create(name="kitchen")
        alice, bob = self.join(self.alice), self.join(self.bob, room="kitchen")
        bob.received()
        self.say(alice, "lobby only")
        self.assertEqual(bob.received(), [])

    def test_joining_shows_the_last_messages_oldest_first(self):
        for n in range(HISTORY_LENGTH + 5):
            Message.objects.create(room=self.room, user=self.bob, text=f"m{n}")
        frames = self.join(self.alice).received()
        self.assertEqual(frames[0], {"accept": True})
        self.assertEqual(texts(frames[1:]), [f"m{n}" for n in range(5, HISTORY_LENGTH + 5)])

    def test_blank_and_binary_input_is_ignored_and_long_text_cut(self):
        alice = self.join(self.alice)
        alice.received()
        alice.say("   ")
        for payload in ({"text": 3}, "just text", None):
            alice.send_text(json.dumps({"stream": "chat", "payload": payload}))
        alice.order += 1
        with self.assertLogs("channels.streams", "WARNING"):
            self.send_and_consume("websocket.receive", {
                "reply_channel": alice.reply_channel, "path": alice.path,
                "order": alice.order, "bytes": b"\x00"})
        self.assertIsNone(self.get_next_message(MESSAGES_CHANNEL))
        # The binary frame is not a stream's: the page is told so.
        self.assertEqual([json.loads(frame["text"]) for frame in alice.received()], [
            {"stream": None, "error": "a binary frame: streams are JSON text frames"}])
        self.say(alice, "x" * (MAX_TEXT_LENGTH + 10))
        self.assertEqual(len(Message.objects.get().text), MAX_TEXT_LENGTH)

    def test_refused_socket_cannot_post(self):
        socket = Socket(self, "/ws/chat/lobby/")
        socket.connect()
        socket.say("sneaky")
        self.assertIsNone(self.get_next_message(MESSAGES_CHANNEL))

    def test_disconnect_leaves_the_room(self):
        alice, bob = self.join(self.alice), self.join(self.bob)
        bob.disconnect()
        self.assertEqual(Group("chat-lobby").channels(), [alice.reply_channel])
        bob.received()
        self.say(alice, "still here?")
        self.assertEqual(bob.received(), [])

    def test_disconnect_deletes_the_connection_session(self):
        alice = Socket.logged_in(self, self.alice, "/ws/chat/lobby/")
        sessions = Session.objects.count()  # the browser's
        alice.connect()
        self.say(alice, "bye")
        self.assertEqual(Session.objects.count(), sessions + 1)
        alice.disconnect()
        self.assertEqual(Session.objects.count(), sessions)

    def test_keepalive_that_runs_after_the_disconnect_leaves_no_session(self):
        # Sent just before the socket closed, run after its disconnect on
        # another worker: it must not bring the session (or membership) back.
        alice = Socket.logged_in(self, self.alice, "/ws/chat/lobby/")
        sessions = Session.objects.count()  # the browser's
        alice.connect()
        self.assertEqual(Session.objects.count(), sessions + 1)
        alice.disconnect()
        alice.keepalive()
        self.assertEqual(Session.objects.count(), sessions)
        self.assertEqual(Group("chat-lobby").channels(), [])
        self.assertEqual(room_presence("lobby").list(), {})

    def test_keepalive_renews_membership(self):
        alice = self.join(self.alice)
        Group("chat-lobby").discard(alice.reply_channel)
        alice.keepalive()
        self.assertEqual(Group("chat-lobby").channels(), [alice.reply_channel])

    def test_keepalive_adds_back_a_lost_presence(self):
        """As after a restart of the Redis server that held it."""
        alice = self.join(self.alice)
        channel_backends["default"].presence_leave("chat-lobby", alice.reply_channel)
        alice.received()
        alice.keepalive()
        self.assertEqual(set(room_presence("lobby").list()), {str(self.alice.pk)})
        self.assertEqual(presence(alice.received())[-1]["event"], "state")
        alice.keepalive()  # renewed: nothing sent
        self.assertEqual(alice.received(), [])

    def test_everyone_in_the_room_sees_who_is_online(self):
        alice = self.join(self.alice)
        [_, state] = presence(alice.received())
        self.assertEqual(state["members"], {str(self.alice.pk): {
            "meta": {"name": "alice"}, "connections": 1}})
        bob = self.join(self.bob)
        [join] = presence(alice.received())
        self.assertEqual(join["joins"], {str(self.bob.pk): {"meta": {"name": "bob"},
                                                            "connections": 1}})
        self.assertEqual(set(presence(bob.received())[-1]["members"]),
                         {str(self.alice.pk), str(self.bob.pk)})
        second_tab = self.join(self.bob)
        [update] = presence(alice.received())
        self.assertEqual(update["updates"][str(self.bob.pk)]["connections"], 2)
        bob.disconnect()
        second_tab.disconnect()
        [_, leave] = presence(alice.received())
        self.assertEqual(leave["leaves"], {str(self.bob.pk): {"meta": {"name": "bob"}}})
        self.assertEqual(set(room_presence("lobby").list()), {str(self.alice.pk)})

    def test_message_for_a_deleted_room_is_dropped(self):
        self.send("chat.messages", {"room": "gone", "user": self.alice.pk, "text": "hi"})
        with self.assertLogs("chat.consumers", "WARNING"):
            self.consume(MESSAGES_CHANNEL)
        self.assertFalse(Message.objects.exists())


class EchoConsumerTests(ChannelTestCase):
    def test_text_and_binary_come_back_as_they_came(self):
        socket = Socket(self, "/ws/echo/")
        socket.connect()
        self.assertEqual(socket.received(), [{"accept": True}])
        socket.send_text("hi")
        socket.order += 1
        self.send_and_consume("websocket.receive", {
            "reply_channel": socket.reply_channel, "path": "/ws/echo/",
            "order": socket.order, "bytes": b"\x00\xff"})
        self.assertEqual(socket.received(), [{"text": "hi"}, {"bytes": b"\x00\xff"}])
