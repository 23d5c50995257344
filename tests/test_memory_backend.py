"""The in-memory backend against the backend contract.

The test classes build backends with ``self.make_backend(**options)``, so
other backends run the same contract by overriding it (test_redis_backend).
"""

import threading
import time

from django.test import SimpleTestCase

from channels.backends.encoding import MAX_MESSAGE_SIZE
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelFull, InvalidChannelName, InvalidMessage, MessageTooLarge
from channels.names import new_name, process_wildcard


class MemoryBackendMixin:
    def make_backend(self, **options):
        return InMemoryChannelBackend(**options)


class ContentValidationTests(MemoryBackendMixin, SimpleTestCase):
    def setUp(self):
        self.backend = self.make_backend()

    def test_round_trip_keeps_types(self):
        content = {"text": "é", "bytes": b"\x00\xff", "int": 2**40, "float": 1.5,
                   "bool": True, "none": None, "list": [1, [2, {"a": b"b"}]],
                   "nested": {"x": {"y": []}}}
        self.backend.send("test", content)
        self.assertEqual(self.backend.receive_many(["test"]), ("test", content))

    def test_tuples_travel_as_lists(self):
        self.backend.send("test", {"t": (1, 2)})
        self.assertEqual(self.backend.receive_many(["test"])[1], {"t": [1, 2]})

    def test_content_must_be_a_dict(self):
        for content in ([1], "text", None, b"bytes", 1):
            with self.subTest(content=content), \
                    self.assertRaisesMessage(InvalidMessage, "Message content must be a dict"):
                self.backend.send("test", content)

    def test_keys_must_be_str_at_every_depth(self):
        for content in ({1: "a"}, {b"k": 1}, {"a": {None: 1}}, {"a": [{2: 3}]},
                        {"a": ({(1,): 1},)}):
            with self.subTest(content=content), \
                    self.assertRaisesMessage(InvalidMessage, "Message keys must be str"):
                self.backend.send("test", content)

    def test_values_must_be_json_compatible_or_bytes(self):
        for value in ({1, 2}, object(), frozenset(), 1j, Exception("x"), 2**70):
            with self.subTest(value=value), \
                    self.assertRaisesMessage(InvalidMessage, "cannot be sent"):
                self.backend.send("test", {"v": value})

    def test_a_refused_message_leaves_nothing_in_the_next(self):
        # Encoding stops half way through the first: none of it may lead
        # the next message's bytes.
        with self.assertRaises(InvalidMessage):
            self.backend.send("test", {"first": "x" * 100, "v": object()})
        self.backend.send("test", {"n": 1})
        self.assertEqual(self.backend.receive_many(["test"]), ("test", {"n": 1}))

    def test_oversize_message(self):
        with self.assertRaisesMessage(MessageTooLarge, "the limit is 1048576"):
            self.backend.send("test", {"body": b"x" * MAX_MESSAGE_SIZE})
        self.backend.send("test", {"body": b"x" * (MAX_MESSAGE_SIZE - 100)})

    def test_nothing_is_sent_after_bad_input(self):
        for bad in ({"v": {1}}, {1: 1}, "no"):
            with self.assertRaises(InvalidMessage):
                self.backend.send("test", bad)
        with self.assertRaises(InvalidChannelName):
            self.backend.send("bad name", {})
        self.assertEqual(self.backend.receive_many(["test"]), (None, None))

    def test_names_are_validated_everywhere(self):
        calls = [
            lambda: self.backend.receive_many(["ok", "bad name"]),
            lambda: self.backend.receive_many_blocking(["bad name"], 0),
            lambda: self.backend.requeue("bad name", {}),
            lambda: self.backend.group_add("bad group", "ok"),
            lambda: self.backend.group_add("ok", "bad channel"),
            lambda: self.backend.group_discard("bad group", "ok"),
            lambda: self.backend.group_channels("bad group"),
            lambda: self.backend.send_group("bad group", {}),
            lambda: self.backend.lock_channel("bad name"),
            lambda: self.backend.unlock_channel("bad name", "token"),
        ]
        for call in calls:
            with self.assertRaises(InvalidChannelName):
                call()

    def test_channel_list_must_not_be_a_str(self):
        with self.assertRaisesMessage(TypeError, "not a str"):
            self.backend.receive_many("http.request")

    def test_bad_call_arguments(self):
        with self.assertRaisesMessage(ValueError, "timeout must be None or at least 0"):
            self.backend.receive_many_blocking(["x"], -1)
        with self.assertRaisesMessage(ValueError, "expiry must be a positive number"):
            self.backend.group_add("g", "c", expiry=0)
        with self.assertRaisesMessage(ValueError, "expiry must be a positive number"):
            self.backend.lock_channel("c", expiry="1")


class QueueTests(MemoryBackendMixin, SimpleTestCase):
    def test_fifo_per_channel(self):
        backend = self.make_backend()
        for n in range(5):
            backend.send("q", {"n": n})
        self.assertEqual([backend.receive_many(["q"])[1]["n"] for _ in range(5)],
                         [0, 1, 2, 3, 4])
        self.assertEqual(backend.receive_many(["q"]), (None, None))

    def test_receive_many_serves_every_listed_channel(self):
        backend = self.make_backend()
        for _ in range(50):
            backend.send("a", {})
        backend.send("b", {})
        # b is not starved by a busy a.
        got = {backend.receive_many(["a", "b"])[0] for _ in range(30)}
        self.assertIn("b", got)

    def test_expiry(self):
        backend = self.make_backend(expiry=0.05)
        backend.send("q", {"old": True})
        time.sleep(0.06)
        backend.send("q", {"old": False})
        self.assertEqual(backend.receive_many(["q"])[1], {"old": False})
        self.assertEqual(backend.receive_many(["q"]), (None, None))

    def test_expired_messages_free_capacity(self):
        backend = self.make_backend(expiry=0.05, capacity=1)
        backend.send("q", {})
        time.sleep(0.06)
        backend.send("q", {})

    def test_expired_messages_behind_a_requeued_one_free_capacity(self):
        # The requeued and the new message must outlive the reads below even
        # on a loaded machine, so the expiry is not much shorter than that.
        backend = self.make_backend(expiry=1, capacity=2)
        backend.send("q", {"n": 1})
        time.sleep(1.05)
        backend.requeue("q", {"n": 0})  # fresh, in front of the expired one
        backend.send("q", {"n": 2})
        self.assertEqual([backend.receive_many(["q"])[1] for _ in range(3)],
                         [{"n": 0}, {"n": 2}, None])

    def test_capacity_raises_channel_full_at_once(self):
        backend = self.make_backend(capacity=2)
        backend.send("q", {})
        backend.send("q", {})
        start = time.monotonic()
        with self.assertRaisesMessage(ChannelFull, "'q' is full"):
            backend.send("q", {})
        self.assertLess(time.monotonic() - start, 1)  # refused, not waited for
        backend.send("other", {})  # capacity is per channel
        backend.receive_many(["q"])
        backend.send("q", {})

    def test_channel_capacity_globs(self):
        backend = self.make_backend(
            capacity=5, channel_capacity={"http.request": 1, "!websocket.send.*": 2})
        self.assertEqual(backend.capacity_for("http.request"), 1)
        self.assertEqual(backend.capacity_for(new_name("!websocket.send")), 2)
        self.assertEqual(backend.capacity_for("http.requests"), 5)
        backend.send("http.request", {})
        with self.assertRaises(ChannelFull):
            backend.send("http.request", {})

    def test_body_channels_hold_a_few_chunks_unless_the_project_says(self):
        body = new_name("http.request.body")
        self.assertEqual(self.make_backend().capacity_for(body), 4)
        backend = self.make_backend(channel_capacity={"http.request.body.*": 50})
        self.assertEqual(backend.capacity_for(body), 50)
        # The project's patterns come first: a catch-all covers bodies too.
        backend = self.make_backend(channel_capacity={"*": 7})
        self.assertEqual(backend.capacity_for(body), 7)

    def test_requeue_puts_message_at_head_ignoring_capacity(self):
        backend = self.make_backend(capacity=1)
        backend.send("q", {"n": 2})
        backend.requeue("q", {"n": 1})
        self.assertEqual(backend.receive_many(["q"])[1], {"n": 1})
        self.assertEqual(backend.receive_many(["q"])[1], {"n": 2})

    def test_wildcard_receives_this_process_generated_names(self):
        backend = self.make_backend()
        first, second = new_name("!resp"), new_name("!resp")
        backend.send(second, {"to": 2})
        backend.send(first, {"to": 1})
        backend.send("!resp.other", {})
        got = {backend.receive_many([process_wildcard("!resp")])[0] for _ in range(2)}
        self.assertEqual(got, {first, second})
        self.assertEqual(backend.receive_many([process_wildcard("!resp")]), (None, None))

    def test_flush(self):
        backend = self.make_backend()
        backend.send("q", {})
        backend.group_add("g", "q")
        backend.lock_channel("q")
        backend.flush()
        self.assertEqual(backend.receive_many(["q"]), (None, None))
        self.assertEqual(backend.group_channels("g"), [])
        self.assertIsNotNone(backend.lock_channel("q"))

    def test_send_many_reports_full_channels_and_sends_the_rest(self):
        backend = self.make_backend(capacity=1)
        full = backend.send_many([("a", {"n": 1}), ("a", {"n": 2}), ("b", {"n": 3})])
        self.assertEqual(full, ["a"])
        self.assertEqual(backend.receive_many(["a"])[1], {"n": 1})
        self.assertEqual(backend.receive_many(["a"]), (None, None))
        self.assertEqual(backend.receive_many(["b"])[1], {"n": 3})

    def test_send_many_keeps_each_channels_order_and_capacity(self):
        backend = self.make_backend(capacity=3)
        messages = [("a", {"n": 1}), ("b", {"n": 1}), ("a", {"n": 2}),
                    (new_name("!resp"), {"n": 1}), ("a", {"n": 3}), ("b", {"n": 2}),
                    ("a", {"n": 4}), ("a", {"n": 5})]
        self.assertEqual(backend.send_many(messages), ["a", "a"])

        def drain(channel):
            return [m["n"] for _, m in backend.receive_batch([channel], 10, timeout=0)]

        self.assertEqual(drain("a"), [1, 2, 3])
        self.assertEqual(drain("b"), [1, 2])
        backend.send("a", {"n": 6})
        self.assertEqual(backend.send_many([("a", {"n": 7}), ("a", {"n": 8})]), [])
        self.assertEqual(backend.send_many([("a", {"n": 9}), ("a", {"n": 10})]), ["a", "a"])
        self.assertEqual(drain("a"), [6, 7, 8])

    def test_pausing_is_a_state_not_a_count(self):
        # A pause tried again after it took, or a resume of a running
        # channel (an interface server retrying after an outage), must not
        # leave the channel paused after the last resume.
        backend = self.make_backend()
        name = new_name("!resp")
        backend.resume_channel(name)
        backend.pause_channel(name)
        backend.pause_channel(name)
        with self.assertRaises(ChannelFull):
            backend.send(name, {"n": 1})
        backend.resume_channel(name)
        backend.send(name, {"n": 2})
        self.assertEqual(backend.receive_batch([process_wildcard("!resp")], timeout=0),
                         [(name, {"n": 2})])

    def test_a_paused_channel_refuses_sends_until_resumed(self):
        backend = self.make_backend()
        name, wildcard = new_name("!resp"), process_wildcard("!resp")
        backend.send(name, {"n": 1})
        backend.pause_channel(name)
        with self.assertRaises(ChannelFull):
            backend.send(name, {"n": 2})
        self.assertEqual(backend.send_many([(name, {"n": 3}), ("other", {"n": 1})]), [name])
        # What it held is still delivered, and taking it leaves it paused.
        self.assertEqual(backend.receive_batch([wildcard], timeout=0), [(name, {"n": 1})])
        with self.assertRaises(ChannelFull):
            backend.send(name, {"n": 4})
        backend.requeue(name, {"n": 0})  # a requeue is not a send
        backend.resume_channel(name)
        backend.send(name, {"n": 5})
        self.assertEqual(backend.receive_batch([wildcard], timeout=0),
                         [(name, {"n": 0}), (name, {"n": 5})])
        self.assertEqual(backend.receive_many(["other"])[1], {"n": 1})

    def test_send_many_validates_everything_before_sending(self):
        backend = self.make_backend()
        with self.assertRaises(InvalidChannelName):
            backend.send_many([("ok", {}), ("bad name", {})])
        with self.assertRaises(InvalidMessage):
            backend.send_many([("ok", {}), ("ok", {"x": object()})])
        self.assertEqual(backend.receive_many(["ok"]), (None, None))

    def test_receive_batch_takes_up_to_limit_in_order(self):
        backend = self.make_backend()
        wildcard = process_wildcard("!resp")
        name = new_name("!resp")
        for n in range(5):
            backend.send(name, {"n": n})
        batch = backend.receive_batch([wildcard], limit=3, timeout=0)
        self.assertEqual(batch, [(name, {"n": n}) for n in range(3)])
        self.assertEqual([m["n"] for _, m in backend.receive_batch([wildcard], timeout=0)], [3, 4])
        started = time.monotonic()
        self.assertEqual(backend.receive_batch([wildcard], timeout=0.05), [])
        self.assertGreaterEqual(time.monotonic() - started, 0.04)
        with self.assertRaises(ValueError):
            backend.receive_batch([wildcard], limit=0)

    def test_local_only(self):
        self.assertTrue(InMemoryChannelBackend.local_only)


class BlockingReceiveTests(MemoryBackendMixin, SimpleTestCase):
    def test_times_out_empty(self):
        backend = self.make_backend()
        start = time.monotonic()
        self.assertEqual(backend.receive_many_blocking(["q"], 0.05), (None, None))
        self.assertGreaterEqual(time.monotonic() - start, 0.045)
        self.assertEqual(backend.receive_many_blocking(["q"], 0), (None, None))

    def test_wakes_promptly_when_another_thread_sends(self):
        backend = self.make_backend()
        sent_at = []

        def send_later():
            time.sleep(0.05)
            sent_at.append(time.monotonic())
            backend.send("q", {"hi": 1})

        thread = threading.Thread(target=send_later)
        thread.start()
        self.assertEqual(backend.receive_many_blocking(["q"], 5), ("q", {"hi": 1}))
        woke = time.monotonic()
        thread.join()
        self.assertLess(woke - sent_at[0], 0.5)


class GroupTests(MemoryBackendMixin, SimpleTestCase):
    def test_add_send_discard(self):
        backend = self.make_backend()
        backend.group_add("g", "a")
        backend.group_add("g", "b")
        backend.group_add("g", "a")  # renewing does not duplicate
        self.assertEqual(sorted(backend.group_channels("g")), ["a", "b"])
        backend.send_group("g", {"x": 1})
        self.assertEqual(backend.receive_many(["a"])[1], {"x": 1})
        self.assertEqual(backend.receive_many(["a"]), (None, None))
        self.assertEqual(backend.receive_many(["b"])[1], {"x": 1})
        backend.group_discard("g", "a")
        backend.group_discard("g", "never-added")
        backend.group_discard("no-group", "a")
        self.assertEqual(backend.group_channels("g"), ["b"])

    def test_members_expire(self):
        backend = self.make_backend(group_expiry=0.05)
        backend.group_add("g", "default-expiry")
        backend.group_add("g", "long", expiry=60)
        time.sleep(0.06)
        self.assertEqual(backend.group_channels("g"), ["long"])
        backend.send_group("g", {})
        self.assertEqual(backend.receive_many(["default-expiry"]), (None, None))

    def test_send_skips_full_members(self):
        backend = self.make_backend(capacity=1)
        backend.group_add("g", "full")
        backend.group_add("g", "free")
        backend.send("full", {"first": True})
        backend.send_group("g", {"group": True})  # does not raise
        self.assertEqual(backend.receive_many(["full"])[1], {"first": True})
        self.assertEqual(backend.receive_many(["full"]), (None, None))
        self.assertEqual(backend.receive_many(["free"])[1], {"group": True})

    def test_send_skips_paused_members(self):
        backend = self.make_backend()
        paused, other = new_name("!resp"), new_name("!resp")
        backend.group_add("g", paused)
        backend.group_add("g", other)
        backend.pause_channel(paused)
        backend.send_group("g", {"group": True})
        self.assertEqual(backend.receive_batch([process_wildcard("!resp")], timeout=0),
                         [(other, {"group": True})])

    def test_group_message_wakes_a_blocked_receiver(self):
        backend = self.make_backend()
        backend.group_add("g", "member")
        timer = threading.Timer(0.02, backend.send_group, ("g", {"x": 1}))
        timer.start()
        self.assertEqual(backend.receive_many_blocking(["member"], 5), ("member", {"x": 1}))
        timer.join()


class LockTests(MemoryBackendMixin, SimpleTestCase):
    def test_owner_token(self):
        backend = self.make_backend()
        token = backend.lock_channel("c")
        self.assertIsInstance(token, str)
        self.assertIsNone(backend.lock_channel("c"))
        self.assertFalse(backend.unlock_channel("c", "not-the-token"))
        self.assertIsNone(backend.lock_channel("c"))
        self.assertTrue(backend.unlock_channel("c", token))
        self.assertFalse(backend.unlock_channel("c", token))
        self.assertIsNotNone(backend.lock_channel("c"))

    def test_lock_expires_and_stale_owner_cannot_unlock(self):
        backend = self.make_backend()
        stale = backend.lock_channel("c", expiry=0.02)
        time.sleep(0.03)
        fresh = backend.lock_channel("c")
        self.assertIsNotNone(fresh)
        self.assertFalse(backend.unlock_channel("c", stale))
        self.assertIsNone(backend.lock_channel("c"))
        self.assertTrue(backend.unlock_channel("c", fresh))

    def test_one_winner_among_threads(self):
        backend = self.make_backend()
        tokens = []
        barrier = threading.Barrier(8)

        def grab():
            barrier.wait()
            tokens.append(backend.lock_channel("c"))

        threads = [threading.Thread(target=grab) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(len([t for t in tokens if t is not None]), 1)


class ThreadSafetyTests(MemoryBackendMixin, SimpleTestCase):
    def test_no_message_lost_or_delivered_twice(self):
        backend = self.make_backend(capacity=100000)
        received = []
        guard = threading.Lock()
        per_sender = 500

        def send(sender):
            for n in range(per_sender):
                backend.send(f"q{n % 3}", {"id": f"{sender}-{n}"})

        def receive():
            while True:
                channel, content = backend.receive_many_blocking(["q0", "q1", "q2"], 0.2)
                if channel is None:
                    return
                with guard:
                    received.append(content["id"])

        threads = [threading.Thread(target=send, args=(s,)) for s in range(4)]
        threads += [threading.Thread(target=receive) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        self.assertEqual(len(received), 4 * per_sender)
        self.assertEqual(len(set(received)), 4 * per_sender)


class SweepTests(SimpleTestCase):
    """What this backend forgets, which is not part of the contract."""

    def test_expired_groups_and_locks_are_forgotten(self):
        # Nobody may ask about them again, so the sweep that a send makes
        # (every EXPIRY / 2) drops them: the marks of closed connections
        # (channels.sessions) must not pile up in a long-running process.
        backend = InMemoryChannelBackend(expiry=0.05)
        backend.group_add("g", "a", expiry=0.05)
        backend.group_add("kept", "b", expiry=60)
        backend.lock_channel("l", expiry=0.05)
        time.sleep(0.06)
        backend.send("q", {})
        self.assertEqual((list(backend._groups), backend._locks), (["kept"], {}))
