"""channel_session, http_session, linearize and enforce_ordering."""

import random
import threading
import time
from datetime import timedelta

from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.core.exceptions import ImproperlyConfigured
from django.test import SimpleTestCase, TestCase, override_settings
from django.utils import timezone

from channels import Channel
from channels.backends.memory import InMemoryChannelBackend
from channels.decorators import (
    ORDER_SESSION_KEY,
    channel_session,
    enforce_ordering,
    http_session,
    linearize,
)
from channels.message import Message
from channels.sessions import channel_session_key, session_store_class
from tests.support.worker_threads import wait_for, worker_threads

CACHE_SESSIONS = "django.contrib.sessions.backends.cache"


def message(content, channel="test.channel", backend=None):
    return Message(content, channel, backend or InMemoryChannelBackend())


def contents(session):
    """What consumers stored: without the expiry every channel session has."""
    return {k: v for k, v in session.items() if k != "_session_expiry"}


def reply_message(backend=None, **content):
    return message({"reply_channel": Channel.new_name("!test.reply"), **content},
                   backend=backend)


class ChannelSessionTests(TestCase):
    def test_key_is_valid_for_every_engine_and_not_a_plain_hash(self):
        key = channel_session_key("!websocket.send.abc")
        self.assertRegex(key, r"\A[0-9a-f]{32}\Z")
        self.assertEqual(key, channel_session_key("!websocket.send.abc"))
        self.assertNotEqual(key, channel_session_key("!websocket.send.abd"))
        with self.settings(SECRET_KEY="another secret"):
            self.assertNotEqual(key, channel_session_key("!websocket.send.abc"))

    def test_session_follows_the_reply_channel(self):
        seen = []

        @channel_session
        def consumer(message):
            seen.append(contents(message.channel_session))
            message.channel_session["count"] = message.channel_session.get("count", 0) + 1

        first = reply_message()
        consumer(first)
        consumer(message(first.content))
        consumer(reply_message())  # another connection
        self.assertEqual(seen, [{}, {"count": 1}, {}])
        key = channel_session_key(first.reply_channel.name)
        self.assertEqual(SessionStore(session_key=key)["count"], 2)

    def test_created_once_something_is_put_in_it(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.get("room"))(msg)  # reads only
        self.assertFalse(Session.objects.exists())
        channel_session(lambda m: m.channel_session.update({"room": "lobby"}))(msg)
        key = channel_session_key(msg.reply_channel.name)
        self.assertEqual(contents(SessionStore(session_key=key).load()), {"room": "lobby"})

    def test_emptied_session_is_deleted(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        channel_session(lambda m: m.channel_session.pop("a"))(msg)
        self.assertFalse(Session.objects.exists())

    def test_saved_when_the_consumer_raises(self):
        @channel_session
        def consumer(message):
            message.channel_session["before"] = "error"
            raise RuntimeError("boom")

        msg = reply_message()
        with self.assertRaises(RuntimeError):
            consumer(msg)
        key = channel_session_key(msg.reply_channel.name)
        self.assertEqual(SessionStore(session_key=key)["before"], "error")

    def test_expired_session_starts_again_under_the_same_key(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"old": 1}))(msg)
        key = channel_session_key(msg.reply_channel.name)
        Session.objects.filter(session_key=key).update(
            expire_date=timezone.now() - timedelta(seconds=1))
        seen = []
        channel_session(lambda m: (seen.append(contents(m.channel_session)),
                                   m.channel_session.update({"new": 2})))(msg)
        self.assertEqual(seen, [{}])
        self.assertEqual(contents(SessionStore(session_key=key).load()), {"new": 2})

    def test_flushed_session_is_not_saved_again(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        channel_session(lambda m: m.channel_session.flush())(msg)
        self.assertFalse(Session.objects.exists())

    def test_nested_decorators_share_one_session(self):
        @channel_session
        @channel_session
        def consumer(message):
            message.channel_session["x"] = 1

        msg = reply_message()
        consumer(msg)
        self.assertEqual(Session.objects.count(), 1)

    def test_needs_a_reply_channel(self):
        with self.assertRaisesMessage(ValueError, "@channel_session needs messages that "
                                                  "carry a reply_channel"):
            channel_session(lambda m: None)(message({}))

    def expire_date(self, msg):
        key = channel_session_key(msg.reply_channel.name)
        return Session.objects.get(session_key=key).expire_date

    def test_expires_after_its_own_short_age_not_the_cookie_age(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        left = (self.expire_date(msg) - timezone.now()).total_seconds()
        self.assertTrue(290 < left <= 300, left)  # CHANNELS_SESSION_AGE, not two weeks
        with override_settings(CHANNELS_SESSION_AGE=60):
            other = reply_message()
            channel_session(lambda m: m.channel_session.update({"a": 1}))(other)
            self.assertLessEqual((self.expire_date(other) - timezone.now()).total_seconds(), 60)

    @override_settings(CHANNELS_SESSION_AGE=60)
    def test_renewed_by_the_connections_messages_once_half_is_gone(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        first = self.expire_date(msg)
        channel_session(lambda m: None)(message(msg.content))
        self.assertEqual(self.expire_date(msg), first)  # not a write per message
        key = channel_session_key(msg.reply_channel.name)
        store = SessionStore(session_key=key)
        store.set_expiry(timedelta(seconds=20))  # 40 s have passed
        store.save()
        channel_session(lambda m: None)(message(msg.content))
        left = (self.expire_date(msg) - timezone.now()).total_seconds()
        self.assertTrue(50 < left <= 60, left)

    @override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies")
    def test_signed_cookies_engine_is_refused(self):
        with self.assertRaisesMessage(ImproperlyConfigured, "server-side SESSION_ENGINE"):
            channel_session(lambda m: None)(reply_message())

    @override_settings(SESSION_ENGINE=CACHE_SESSIONS)
    def test_works_with_the_cache_engine(self):
        msg = reply_message()
        channel_session(lambda m: m.channel_session.update({"a": 1}))(msg)
        seen = []
        channel_session(lambda m: seen.append(m.channel_session["a"]))(msg)
        self.assertEqual(seen, [1])

    def test_refuses_to_sit_above_a_lock(self):
        for locking in (linearize, enforce_ordering):
            with self.subTest(locking.__name__), \
                    self.assertRaisesMessage(ImproperlyConfigured, "put @linearize"):
                channel_session(locking(lambda m: None))


class HttpSessionTests(TestCase):
    def make_session(self, **data):
        session = SessionStore()
        session.update(data)
        session.create()
        return session.session_key

    def run_consumer(self, content):
        seen = []
        http_session(lambda m: seen.append(m.http_session))(message(content))
        return seen[0]

    def test_session_from_cookie(self):
        key = self.make_session(colour="blue")
        session = self.run_consumer({"cookies": {"sessionid": key}})
        self.assertEqual(session["colour"], "blue")

    def test_no_cookie_or_unknown_key_gives_none(self):
        self.assertIsNone(self.run_consumer({}))
        self.assertIsNone(self.run_consumer({"cookies": {}}))
        self.assertIsNone(self.run_consumer({"cookies": {"sessionid": "0" * 32}}))
        self.assertIsNone(self.run_consumer({"cookies": {"sessionid": "bad!"}}))

    @override_settings(SESSION_COOKIE_NAME="othercookie")
    def test_cookie_name_comes_from_settings(self):
        key = self.make_session(a=1)
        self.assertIsNone(self.run_consumer({"cookies": {"sessionid": key}}))
        self.assertEqual(self.run_consumer({"cookies": {"othercookie": key}})["a"], 1)

    def test_query_parameter_ignored_by_default(self):
        key = self.make_session(a=1)
        self.assertIsNone(self.run_consumer({"query": {"session_key": [key]}}))

    @override_settings(CHANNELS_SESSION_KEY_QUERY_PARAM=True)
    def test_query_parameter_when_enabled(self):
        key = self.make_session(a=1)
        self.assertEqual(self.run_consumer({"query": {"session_key": [key]}})["a"], 1)
        self.assertIsNone(self.run_consumer({"query": {"session_key": []}}))

    def test_modified_session_is_saved_even_on_error(self):
        key = self.make_session(a=1)

        @http_session
        def consumer(message):
            message.http_session["a"] = 2
            raise RuntimeError

        with self.assertRaises(RuntimeError):
            consumer(message({"cookies": {"sessionid": key}}))
        self.assertEqual(SessionStore(session_key=key)["a"], 2)


class LinearizeTests(SimpleTestCase):
    def test_contention_requeues_and_lock_is_released(self):
        backend = InMemoryChannelBackend()
        msg = reply_message(backend)
        ran = []

        @linearize
        def consumer(message):
            ran.append(message)

        name = msg.reply_channel.name
        token = backend.lock_channel(name)
        with self.assertRaises(Message.Requeue):
            consumer(msg)
        self.assertEqual(ran, [])
        backend.unlock_channel(name, token)
        consumer(msg)
        self.assertEqual(ran, [msg])
        self.assertIsNotNone(backend.lock_channel(name))  # released again

    def test_waits_briefly_for_a_lock_that_is_released(self):
        backend = InMemoryChannelBackend()
        msg = reply_message(backend)
        name = msg.reply_channel.name
        token = backend.lock_channel(name)
        timer = threading.Timer(0.01, backend.unlock_channel, (name, token))
        timer.start()
        ran = []
        linearize(wait=5)(ran.append)(msg)  # no requeue: it got the lock
        timer.join()
        self.assertEqual(ran, [msg])

    def test_no_wait_requeues_at_once(self):
        attempts = []

        class CountingBackend(InMemoryChannelBackend):
            def lock_channel(self, channel, expiry=60):
                attempts.append(channel)
                return super().lock_channel(channel, expiry)

        backend = CountingBackend()
        msg = reply_message(backend)
        backend.lock_channel(msg.reply_channel.name)
        attempts.clear()
        with self.assertRaises(Message.Requeue):
            linearize(wait=0)(lambda m: None)(msg)
        self.assertEqual(attempts, [msg.reply_channel.name])  # one try, no waiting

    def test_lock_released_when_consumer_raises(self):
        backend = InMemoryChannelBackend()
        msg = reply_message(backend)

        @linearize
        def consumer(message):
            raise RuntimeError

        with self.assertRaises(RuntimeError):
            consumer(msg)
        self.assertIsNotNone(backend.lock_channel(msg.reply_channel.name))

    def test_nested_lock_is_reentrant(self):
        ran = []
        linearize(linearize(lambda m: ran.append(1)))(reply_message())
        self.assertEqual(ran, [1])

    def test_expired_lock_is_logged(self):
        backend = InMemoryChannelBackend()
        msg = reply_message(backend)

        @linearize(expiry=0.01)
        def slow(message):
            time.sleep(0.02)
            backend.lock_channel(message.reply_channel.name)  # someone else's now

        with self.assertLogs("channels.decorators", "WARNING") as logs:
            slow(msg)
        self.assertIn("expired while", logs.output[0])

    def test_bad_arguments(self):
        with self.assertRaisesMessage(ValueError, "@linearize needs messages"):
            linearize(lambda m: None)(message({}))
        with self.assertRaisesMessage(ValueError, "linearize expiry must be a positive"):
            linearize(expiry=0)
        with self.assertRaisesMessage(ValueError, "linearize wait must be a number"):
            linearize(wait=-1)

    def test_same_connection_never_runs_concurrently(self):
        active, overlaps, done = {}, [], []
        guard = threading.Lock()

        @linearize
        def consumer(message):
            name = message.reply_channel.name
            with guard:
                active[name] = active.get(name, 0) + 1
                if active[name] > 1:
                    overlaps.append(name)
            time.sleep(random.uniform(0, 0.002))
            with guard:
                active[name] -= 1
                done.append(message["n"])

        backend = InMemoryChannelBackend(routing={"test.lin": consumer}, capacity=1000)
        replies = [Channel.new_name("!test.reply") for _ in range(3)]
        with worker_threads(backend, ["test.lin"], 4):
            for n in range(60):
                backend.send("test.lin", {"reply_channel": replies[n % 3], "n": n})
            wait_for(lambda: len(done) == 60)
        self.assertEqual(overlaps, [])
        self.assertEqual(sorted(done), list(range(60)))


@override_settings(SESSION_ENGINE=CACHE_SESSIONS)
class EnforceOrderingTests(SimpleTestCase):
    def setUp(self):
        self.backend = InMemoryChannelBackend()
        self.reply = Channel.new_name("!websocket.send")
        self.seen = []

        @enforce_ordering(max_wait=0.05, wait=0)
        def consumer(message):
            if message.get("fail"):
                raise RuntimeError("consumer failed")
            self.seen.append(message.get("order"))

        self.consumer = consumer

    def run_order(self, order, **extra):
        content = {"reply_channel": self.reply, **extra}
        if order is not None:
            content["order"] = order
        self.consumer(message(content, "websocket.receive", self.backend))

    def test_in_order_messages_run(self):
        for order in (0, 1, 2):
            self.run_order(order)
        self.assertEqual(self.seen, [0, 1, 2])

    def test_without_decorated_connect_first_receive_is_one(self):
        self.run_order(1)
        self.assertEqual(self.seen, [1])

    def waiting(self):
        """The orders of what waits on the channel, taking it."""
        found = []
        while (content := self.backend.receive_many(["websocket.receive"])[1]) is not None:
            found.append(content["order"])
        return found

    def test_early_message_goes_to_the_back_until_its_turn(self):
        self.run_order(0)
        self.backend.send("websocket.receive", {"reply_channel": self.reply, "order": 1})
        self.run_order(2)  # early: sent again, behind its predecessor
        self.assertEqual(self.waiting(), [1, 2])
        self.run_order(1)
        self.run_order(2)
        self.assertEqual(self.seen, [0, 1, 2])

    def test_early_message_goes_to_the_head_when_the_channel_is_full(self):
        self.backend = InMemoryChannelBackend(channel_capacity={"websocket.receive": 1})
        self.run_order(0)
        self.backend.send("websocket.receive", {"reply_channel": self.reply, "order": 1})
        with self.assertRaises(Message.Requeue):
            self.run_order(2)
        self.assertEqual(self.waiting(), [1])

    def test_lost_message_is_given_up_after_max_wait(self):
        self.run_order(0)
        self.run_order(2)
        self.assertEqual(self.waiting(), [2])
        time.sleep(0.06)
        with self.assertLogs("channels.decorators", "WARNING") as logs:
            self.run_order(2)
        self.assertIn("Gave up on message(s) 1 to 1", logs.output[0])
        with self.assertLogs("channels.decorators", "WARNING") as logs:
            self.run_order(1)  # turns up too late: dropped, not run out of order
        self.assertIn("Dropped message 1", logs.output[0])
        self.run_order(3)
        self.assertEqual(self.seen, [0, 2, 3])

    def test_giving_up_skips_no_message_that_was_seen(self):
        self.run_order(0)
        for order in (4, 3):  # 1 and 2 lost; 3 and 4 came swapped
            self.run_order(order)
        self.assertEqual(self.waiting(), [4, 3])
        time.sleep(0.06)
        with self.assertLogs("channels.decorators", "WARNING") as logs:
            self.run_order(4)  # 3 was seen: it goes first
        self.assertIn("Gave up on message(s) 1 to 2", logs.output[0])
        self.assertEqual(self.waiting(), [4])
        self.run_order(3)
        self.run_order(4)
        self.assertEqual(self.seen, [0, 3, 4])

    def test_early_message_waits_in_the_worker_for_its_predecessor(self):
        @enforce_ordering(wait=5)
        def consumer(message):
            self.seen.append(message["order"])

        def run(order):
            consumer(message({"reply_channel": self.reply, "order": order}, "ws", self.backend))

        run(0)
        timer = threading.Timer(0.02, run, (1,))  # another worker, a little later
        timer.start()
        run(2)  # no Requeue: it waited, with the lock released, for 1
        timer.join()
        self.assertEqual(self.seen, [0, 1, 2])

    def test_no_waiting_under_an_outer_lock(self):
        consumer = linearize(enforce_ordering(wait=5)(lambda m: None))
        start = time.monotonic()
        with self.assertRaises(Message.Requeue):
            consumer(message({"reply_channel": self.reply, "order": 3}, "ws", self.backend))
        self.assertLess(time.monotonic() - start, 1)

    def test_message_that_turns_up_after_the_disconnect_is_dropped(self):
        # The disconnect (3) gives up waiting for 1 and 2, runs and ends the
        # session; 2 turns up then. Nothing will ever come before it, so it
        # is dropped, not sent round again and again.
        self.run_order(0)
        disconnect = message({"reply_channel": self.reply, "order": 3},
                             "websocket.disconnect", self.backend)
        self.consumer(disconnect)  # early: it waits
        time.sleep(0.06)  # max_wait
        with self.assertLogs("channels.decorators", "WARNING"):  # gave up on 1 and 2
            self.consumer(disconnect)
        with self.assertLogs("channels.decorators", "WARNING") as logs:
            self.run_order(2)
        self.assertIn("Dropped message 2", logs.output[0])
        self.assertIn("its connection has closed", logs.output[0])
        self.assertEqual(self.waiting(), [])
        self.assertEqual(self.seen, [0, 3])
        key = channel_session_key(self.reply)
        self.assertFalse(session_store_class()().exists(key))

    def test_failed_consumer_counts_as_run(self):
        self.run_order(0)
        with self.assertRaises(RuntimeError):
            self.run_order(1, fail=True)
        self.run_order(2)
        self.assertEqual(self.seen, [0, 2])

    def test_consumer_requeue_keeps_its_turn(self):
        attempts = []

        @enforce_ordering
        def consumer(message):
            attempts.append(message["order"])
            if len(attempts) == 1:
                raise Message.Requeue()

        msg = message({"reply_channel": self.reply, "order": 1}, "ws", self.backend)
        with self.assertRaises(Message.Requeue):
            consumer(msg)
        consumer(msg)
        self.assertEqual(attempts, [1, 1])

    def test_unnumbered_messages_just_run(self):
        self.run_order(None)
        self.assertEqual(self.seen, [None])

    def test_waits_for_the_lock_first(self):
        token = self.backend.lock_channel(self.reply)
        with self.assertRaises(Message.Requeue):
            self.run_order(0)
        self.backend.unlock_channel(self.reply, token)
        self.run_order(0)
        self.assertEqual(self.seen, [0])

    def test_bad_order_and_arguments(self):
        for bad in (-1, "1", 1.5, True):
            with self.subTest(bad), self.assertRaisesMessage(ValueError, "'order' must be"):
                self.run_order(bad)
        with self.assertRaisesMessage(ValueError, "max_wait must be a positive"):
            enforce_ordering(max_wait=-1)
        with self.assertRaisesMessage(ValueError, "enforce_ordering wait must be"):
            enforce_ordering(wait="1")
        with self.assertRaisesMessage(ImproperlyConfigured, "remove the @linearize"):
            enforce_ordering(linearize(lambda m: None))

    def test_state_lives_in_the_channel_session(self):
        self.run_order(0)
        seen = []
        channel_session(lambda m: seen.append(m.channel_session[ORDER_SESSION_KEY]))(
            message({"reply_channel": self.reply}, "x", self.backend))
        self.assertEqual(seen, [{"next": 1}])

    def test_predecessors_behind_early_messages_are_reached(self):
        # Requeues and give-backs can leave a connection's messages at the
        # head of the channel as 5..8 then 1..4, and a worker takes them all
        # at once: the early ones must not keep going back in front.
        processed = []

        @enforce_ordering(max_wait=60)
        def consumer(message):
            processed.append(message["order"])

        backend = InMemoryChannelBackend(routing={"websocket.receive": consumer})
        consumer(message({"reply_channel": self.reply, "order": 0}, "websocket.connect",
                         backend))
        for order in (5, 6, 7, 8, 1, 2, 3, 4):
            backend.send("websocket.receive", {"reply_channel": self.reply, "order": order})
        with worker_threads(backend, ["websocket.receive"], 2):
            wait_for(lambda: len(processed) == 9, 10)
        self.assertEqual(processed, list(range(9)))

    def test_order_kept_with_several_workers(self):
        processed = {}
        guard = threading.Lock()

        @enforce_ordering
        def consumer(message):
            time.sleep(random.uniform(0, 0.001))
            with guard:
                processed.setdefault(message.reply_channel.name, []).append(message["order"])

        backend = InMemoryChannelBackend(routing={"websocket.receive": consumer,
                                                  "websocket.connect": consumer},
                                         capacity=1000)
        replies = [Channel.new_name("!websocket.send") for _ in range(3)]
        with worker_threads(backend, ["websocket.receive", "websocket.connect"], 4):
            for reply in replies:
                backend.send("websocket.connect", {"reply_channel": reply, "order": 0})
            # As the handshake does: nothing is received before connect ran.
            wait_for(lambda: len(processed) == 3)
            for order in range(1, 26):
                for reply in replies:
                    backend.send("websocket.receive", {"reply_channel": reply, "order": order})
            wait_for(lambda: sum(map(len, processed.values())) == 78)
        for reply in replies:
            self.assertEqual(processed[reply], list(range(26)))
