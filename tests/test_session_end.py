"""A channel session ends with its connection: deleted once the disconnect
has run, and not created again by a message of the connection that runs
later (channels/sessions.py, the channel_session decorator). The chat's
own tests (testproject/chat/tests) check it on the consumers and the live
server."""

from django.contrib.sessions.models import Session
from django.test import TestCase

from channels.backends.memory import InMemoryChannelBackend
from channels.decorators import channel_session
from channels.message import Message
from channels.sessions import connection_closed
from tests.support.worker_threads import wait_for
from tests.test_decorators import message, reply_message


class ChannelSessionEndTests(TestCase):
    def closing_message(self, msg, channel="websocket.disconnect"):
        return message({"reply_channel": msg.reply_channel.name, "code": 1000}, channel,
                       msg.channel_backend)

    def test_disconnect_ends_it_and_a_later_message_does_not_create_it_again(self):
        # A keepalive or a message the client sent just before it left can
        # run after the disconnect, on another worker.
        backend = InMemoryChannelBackend()
        connect = reply_message(backend=backend)
        channel_session(lambda m: m.channel_session.update({"room": "lobby"}))(connect)
        seen = []
        channel_session(lambda m: seen.append(dict(m.channel_session)))(
            self.closing_message(connect))  # without a flush
        self.assertEqual(seen, [{"room": "lobby"}])
        self.assertFalse(Session.objects.exists())
        late = message({"reply_channel": connect.reply_channel.name}, "websocket.receive",
                       backend)
        channel_session(lambda m: seen.append(dict(m.channel_session)))(late)  # a keepalive
        channel_session(lambda m: m.channel_session.update({"typed": "bye"}))(late)
        self.assertEqual(seen[1:], [{}])
        self.assertFalse(Session.objects.exists())
        # Other connections are not affected.
        other = reply_message(backend=backend)
        channel_session(lambda m: m.channel_session.update({"room": "lobby"}))(other)
        self.assertEqual(Session.objects.count(), 1)

    def test_http_disconnect_ends_it_too(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        channel_session(lambda m: None)(self.closing_message(msg, "http.disconnect"))
        self.assertFalse(Session.objects.exists())

    def test_requeued_disconnect_does_not_end_it(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)

        @channel_session
        def not_yet(message):
            raise Message.Requeue()

        with self.assertRaises(Message.Requeue):
            not_yet(self.closing_message(msg))
        self.assertEqual(Session.objects.count(), 1)

    def test_the_closed_mark_expires(self):
        backend = InMemoryChannelBackend(expiry=0.05)
        msg = reply_message(backend=backend)
        channel_session(lambda m: None)(self.closing_message(msg))
        reply = msg.reply_channel.name
        self.assertTrue(connection_closed(backend, reply))
        wait_for(lambda: not connection_closed(backend, reply))  # 2 * EXPIRY

    def test_session_deleted_while_a_consumer_ran_is_not_saved_again(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)

        @channel_session
        def meanwhile_disconnected(message):
            channel_session(lambda m: None)(self.closing_message(msg))  # another worker
            message.channel_session["a"] = 2

        meanwhile_disconnected(message(msg.content, backend=msg.channel_backend))
        self.assertFalse(Session.objects.exists())
