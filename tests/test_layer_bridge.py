"""The interface server's layer bridge (channels/interfaces/layer.py) over the
threaded layer client (channels/backends/threaded_client.py), on the
in-memory backend: batches and what each sender hears of its message,
replies reaching their listener, pauses retried on a ``task.Clock``, and a
stopped reader putting back what it took. test_redis_reactor.py runs the
bridge over Redis."""

import queue
import threading

from django.test import SimpleTestCase
from twisted.internet import reactor
from twisted.internet.defer import DeferredList
from twisted.internet.task import Clock
from twisted.internet.threads import blockingCallFromThread

from channels.backends.encoding import encode
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import (
    ChannelBackendUnavailable,
    ChannelFull,
    InvalidChannelName,
    InvalidMessage,
    MessageTooLarge,
)
from channels.interfaces.layer import LayerBridge
from channels.interfaces.threaded import ensure_reactor
from channels.names import new_name, owner_process, process_wildcard
from tests.support.worker_threads import wait_for


def on_reactor(function, *args):
    """Call on the reactor thread; wait for the result (and for a Deferred's)."""
    return blockingCallFromThread(reactor, function, *args)


class RecordingBackend(InMemoryChannelBackend):
    """Records the size of each batch of messages it is given."""

    def __init__(self, **options):
        super().__init__(**options)
        self.batches = []

    def _send_many(self, messages):
        if messages:
            self.batches.append(len(messages))
        return super()._send_many(messages)


class UnreachableBackend(InMemoryChannelBackend):
    def _send_many(self, messages):
        raise ChannelBackendUnavailable("connection refused")


class FlakyReceiveBackend(InMemoryChannelBackend):
    """Its next read fails once ``fail`` is set (at first, unless told),
    as when the Redis server holding the inbox goes away."""

    def __init__(self, fail: bool = True):
        super().__init__()
        self.fail = threading.Event()
        if fail:
            self.fail.set()
        self.failed = threading.Event()

    def _receive_batch(self, channels, limit, timeout):
        if self.fail.is_set():
            self.fail.clear()
            self.failed.set()
            raise ChannelBackendUnavailable("store restarting")
        return super()._receive_batch(channels, limit, timeout)


class PausesFailingBackend(InMemoryChannelBackend):
    """Its first few pauses and resumes fail, as with Redis out of reach."""

    def __init__(self, pauses: int = 0, resumes: int = 0):
        super().__init__()
        self.failures = {True: pauses, False: resumes}
        self.calls = {True: 0, False: 0}

    def _set_paused(self, channel, paused):
        failing = self.calls[paused] < self.failures[paused]
        self.calls[paused] += 1
        if failing:
            raise ChannelBackendUnavailable("Redis is unreachable")
        super()._set_paused(channel, paused)


class BridgeTestCase(SimpleTestCase):
    def bridge(self, backend, clock=None, poll_timeout=0.05) -> LayerBridge:
        ensure_reactor()
        client = backend.layer_client(reactor)
        client.poll_timeout = poll_timeout
        bridge = LayerBridge(client, clock)
        on_reactor(bridge.start)
        self.addCleanup(on_reactor, bridge.stop)
        return bridge

    @staticmethod
    def settle(bridge: LayerBridge) -> None:
        """Wait until what the client was given so far is answered on the
        reactor: its sender thread keeps the order, and so does the way
        back."""
        on_reactor(bridge.client.send_batch, [])


class SendTests(BridgeTestCase):
    def test_what_one_turn_sends_goes_as_one_batch_in_order(self):
        backend = RecordingBackend()
        clock = Clock()
        bridge = self.bridge(backend, clock)

        def send_all():
            for n in range(5):
                bridge.send("q", {"n": n})

        on_reactor(send_all)
        self.settle(bridge)
        self.assertEqual(backend.batches, [])  # the turn has not ended
        on_reactor(clock.advance, 0)
        self.settle(bridge)
        self.assertEqual(backend.batches, [5])
        self.assertEqual([content["n"] for _, content in backend.receive_batch(["q"], 10, 0)],
                         [0, 1, 2, 3, 4])

    def test_on_sent_hears_of_taken_messages_and_on_failure_of_refused_ones(self):
        backend = InMemoryChannelBackend(channel_capacity={"body": 2})
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_all():
            # One batch: an untracked message, then three tracked ones for
            # a channel with room for two.
            bridge.send("body", {"n": 0})
            for n in (1, 2, 3):
                bridge.send("body", {"n": n}, lambda exc, n=n: heard.put((n, type(exc))),
                            lambda n=n: heard.put((n, "sent")))

        on_reactor(send_all)
        reports = sorted(heard.get(timeout=10) for _ in range(3))
        self.assertEqual(reports, [(1, "sent"), (2, ChannelFull), (3, ChannelFull)])
        self.assertEqual([backend.receive_many(["body"])[1]["n"] for _ in range(2)], [0, 1])

    def test_a_message_that_cannot_travel_fails_alone(self):
        backend = RecordingBackend()
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()

        def send_all():
            bridge.send("q", {"bad": object()}, heard.put)
            bridge.send("no spaces", {"n": 1}, heard.put)
            bridge.send("q", {"big": b"x" * (1024 * 1024)}, heard.put)
            bridge.send("q", {"good": 1}, heard.put, lambda: heard.put("sent"))

        on_reactor(send_all)
        self.assertEqual([type(heard.get(timeout=10)) for _ in range(4)],
                         [InvalidMessage, InvalidChannelName, MessageTooLarge, str])
        self.assertEqual(backend.batches, [1])
        self.assertEqual(backend.receive_batch(["q"], 10, 0), [("q", {"good": 1})])

    def test_an_unreachable_backend_fails_the_batch_and_leaves_the_logging_to_it(self):
        # The backend logs an outage once when it starts and once when it
        # ends (a Redis shard: test_redis_outages); nothing per batch here.
        bridge = self.bridge(UnreachableBackend())
        heard = queue.SimpleQueue()

        def send_all():
            bridge.send("a", {"n": 1}, heard.put)
            bridge.send("b", {"n": 2}, heard.put, lambda: heard.put("sent"))

        with self.assertNoLogs("channels.server", "WARNING"):
            on_reactor(send_all)
            self.assertEqual([type(heard.get(timeout=10)) for _ in range(2)],
                             [ChannelBackendUnavailable] * 2)

    def test_flushed_fires_once_the_backend_has_what_was_sent(self):
        backend = InMemoryChannelBackend()
        bridge = self.bridge(backend)
        on_reactor(bridge.send, "q", {"n": 1})
        on_reactor(bridge.flushed)
        self.assertEqual(backend.receive_many(["q"]), ("q", {"n": 1}))
        on_reactor(bridge.flushed)  # with nothing under way


class ThreadedClientTests(BridgeTestCase):
    def test_batches_keep_their_order_and_hear_of_their_own_refusals(self):
        backend = InMemoryChannelBackend(channel_capacity={"q": 3})
        bridge = self.bridge(backend)
        batches = [[("q", encode({"n": 0})), ("r", encode({"n": 0}))],
                   [("q", encode({"n": 1})), ("r", encode({"n": 1}))],
                   [("q", encode({"n": n})) for n in (2, 3, 4)]]

        def send_all():
            return DeferredList([bridge.client.send_batch(batch) for batch in batches])

        outcomes = [outcome for _, outcome in on_reactor(send_all)]
        self.assertEqual([[(position, type(exc)) for position, exc in outcome]
                          for outcome in outcomes],
                         [[], [], [(1, ChannelFull), (2, ChannelFull)]])
        for channel, sent in (("q", [0, 1, 2]), ("r", [0, 1])):
            self.assertEqual([content["n"] for _, content in
                              backend.receive_batch([channel], 10, 0)], sent)


class ReceiveTests(BridgeTestCase):
    def test_replies_reach_their_listener_in_order(self):
        backend = InMemoryChannelBackend()
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()
        channel = on_reactor(bridge.new_reply_channel, "!websocket.send", heard.put)
        for n in range(3):
            backend.send(channel, {"n": n})
        self.assertEqual([heard.get(timeout=10) for _ in range(3)],
                         [{"n": 0}, {"n": 1}, {"n": 2}])

    def test_a_reply_that_cannot_be_decoded_is_dropped_alone(self):
        backend = InMemoryChannelBackend()
        bridge = self.bridge(backend)
        heard = queue.SimpleQueue()
        channel = on_reactor(bridge.new_reply_channel, "!http.response", heard.put)
        with self.assertLogs("channels.server", "ERROR") as logs:
            backend.send_many_encoded([(channel, b"\xc1"), (channel, encode({"n": 1}))])
            self.assertEqual(heard.get(timeout=10), {"n": 1})
        self.assertIn("Could not decode a message", logs.output[0])

    def test_the_reader_survives_a_failed_read(self):
        backend = FlakyReceiveBackend()
        heard = queue.SimpleQueue()
        with self.assertLogs("channels.server", "WARNING") as logs:
            bridge = self.bridge(backend)
            wait_for(backend.failed.is_set, timeout=10)
            channel = on_reactor(bridge.new_reply_channel, "!websocket.send", heard.put)
            backend.send(channel, {"n": 1})
            self.assertEqual(heard.get(timeout=10), {"n": 1})
        self.assertEqual(len(logs.output), 1)
        self.assertIn("Replies to this process could not be read (store restarting): 0 client",
                      logs.output[0])

    def test_clients_of_a_lost_inbox_are_told_and_new_ones_get_another(self):
        backend = FlakyReceiveBackend(fail=False)
        bridge = self.bridge(backend)
        heard, lost = queue.SimpleQueue(), queue.SimpleQueue()
        old_token = bridge.token
        waiting = [on_reactor(bridge.new_reply_channel, prefix, heard.put,
                              lambda n=n: lost.put(n))
                   for n, prefix in enumerate(["!http.response", "!websocket.send"])]
        gone = on_reactor(bridge.new_reply_channel, "!http.response", heard.put,
                          lambda: lost.put("gone"))
        on_reactor(bridge.forget, gone)  # answered already: not told
        with self.assertLogs("channels.server", "WARNING") as logs:
            backend.fail.set()
            self.assertEqual(sorted([lost.get(timeout=10), lost.get(timeout=10)]), [0, 1])
        self.assertIn("2 client(s) waiting for them are answered", logs.output[0])
        self.assertTrue(lost.empty())
        self.assertNotEqual(bridge.token, old_token)
        self.assertEqual({owner_process(name) for name in waiting}, {old_token})
        channel = on_reactor(bridge.new_reply_channel, "!websocket.send", heard.put)
        self.assertEqual(owner_process(channel), bridge.token)
        backend.send(channel, {"n": 1})
        self.assertEqual(heard.get(timeout=10), {"n": 1})
        # The old inbox is read no more: what reaches it is not delivered.
        backend.send(waiting[1], {"n": 2})
        backend.send(channel, {"n": 3})
        self.assertEqual(heard.get(timeout=10), {"n": 3})
        self.assertTrue(heard.empty())

    def test_a_stopped_reader_puts_back_what_its_last_read_takes(self):
        backend = InMemoryChannelBackend()
        bridge = self.bridge(backend, poll_timeout=10)
        heard = queue.SimpleQueue()
        channel = on_reactor(bridge.new_reply_channel, "!websocket.send", heard.put)
        backend.send(channel, {"n": 0})
        self.assertEqual(heard.get(timeout=10), {"n": 0})  # the reader waits again
        [stopped] = on_reactor(lambda: [bridge.stop()])  # not waiting for it
        backend.send_many([(channel, {"n": 1}), (channel, {"n": 2})])
        wait_for(lambda: stopped.called, timeout=15)
        self.assertEqual(backend.receive_batch([process_wildcard("!websocket.send")], 10, 0),
                         [(channel, {"n": 1}), (channel, {"n": 2})])
        self.assertTrue(heard.empty())


class PauseTests(BridgeTestCase):
    def clocked(self, backend):
        """A bridge whose retries wait for the test's clock."""
        clock = Clock()
        return self.bridge(backend, clock), clock

    def test_a_failed_pause_is_tried_again_every_second_until_it_takes(self):
        backend = PausesFailingBackend(pauses=2)
        bridge, clock = self.clocked(backend)
        channel = new_name("!http.response")
        with self.assertLogs("channels.server", "DEBUG") as logs:
            on_reactor(bridge.pause, channel, True)
            self.settle(bridge)
            [retry] = on_reactor(clock.getDelayedCalls)
            self.assertEqual(retry.getTime(), 1.0)
            on_reactor(clock.advance, 0.5)
            self.settle(bridge)
            self.assertEqual(backend.calls[True], 1)  # not yet
            on_reactor(clock.advance, 0.5)
            self.settle(bridge)
            self.assertEqual(backend.calls[True], 2)  # fails again
            on_reactor(clock.advance, 1.0)
            self.settle(bridge)
            self.assertEqual(backend.calls[True], 3)  # takes
        self.assertEqual(on_reactor(clock.getDelayedCalls), [])
        with self.assertRaises(ChannelFull):
            backend.send(channel, {"n": 1})
        self.assertEqual(len(logs.output), 2)
        # An outage: the backend logs it, once; these are for debugging.
        self.assertTrue(all(line.startswith("DEBUG:") for line in logs.output))
        self.assertIn("Could not pause", logs.output[0])
        self.assertIn("trying again", logs.output[0])

    def test_retries_stop_after_the_attempts_allowed(self):
        backend = PausesFailingBackend(pauses=10)
        bridge, clock = self.clocked(backend)
        bridge.change_attempts = 2
        channel = new_name("!http.response")
        with self.assertLogs("channels.server", "DEBUG") as logs:
            on_reactor(bridge.pause, channel, True)
            for _ in range(5):
                self.settle(bridge)
                on_reactor(clock.advance, 1.0)
        self.assertEqual(backend.calls[True], 3)
        self.assertEqual(on_reactor(clock.getDelayedCalls), [])
        self.assertNotIn("trying again", logs.output[-1])
        backend.send(channel, {"n": 1})  # never paused

    def test_a_failed_resume_is_tried_again_unless_paused_again_since(self):
        backend = PausesFailingBackend(resumes=2)
        bridge, clock = self.clocked(backend)
        first, second = new_name("!http.response"), new_name("!http.response")
        with self.assertLogs("channels.server", "DEBUG"):
            for channel in (first, second):
                on_reactor(bridge.pause, channel, True)
                on_reactor(bridge.pause, channel, False)  # both fail
            self.settle(bridge)
            self.assertEqual(len(on_reactor(clock.getDelayedCalls)), 2)
            on_reactor(bridge.pause, second, True)  # the client fell behind again
            self.settle(bridge)
            self.assertEqual(len(on_reactor(clock.getDelayedCalls)), 1)
            on_reactor(clock.advance, 1.0)
            self.settle(bridge)
        self.assertEqual(backend.calls[False], 3)  # first's retry; second's was dropped
        self.assertEqual(on_reactor(clock.getDelayedCalls), [])
        backend.send(first, {"n": 1})
        with self.assertRaises(ChannelFull):
            backend.send(second, {"n": 1})

    def test_a_change_replaced_while_under_way_is_not_retried(self):
        backend = PausesFailingBackend(resumes=1)
        bridge, clock = self.clocked(backend)
        channel = new_name("!http.response")

        def behind_ahead_behind():
            bridge.pause(channel, True)
            bridge.pause(channel, False)  # fails, once the next is asked for
            bridge.pause(channel, True)

        with self.assertNoLogs("channels.server", "WARNING"):
            on_reactor(behind_ahead_behind)
            self.settle(bridge)
        self.assertEqual(backend.calls, {True: 2, False: 1})
        self.assertEqual(on_reactor(clock.getDelayedCalls), [])
        with self.assertRaises(ChannelFull):
            backend.send(channel, {"n": 1})

    def test_a_forgotten_channel_is_still_resumed(self):
        # The response ended: the resume must still take, or the worker
        # sending the rest waits for its send timeout.
        backend = PausesFailingBackend(resumes=1)
        bridge, clock = self.clocked(backend)
        channel = on_reactor(bridge.new_reply_channel, "!http.response", lambda content: None)

        def finished():
            bridge.pause(channel, True)
            bridge.pause(channel, False)
            bridge.forget(channel)

        with self.assertLogs("channels.server", "DEBUG"):
            on_reactor(finished)
            self.settle(bridge)
        on_reactor(clock.advance, 1.0)
        self.settle(bridge)
        self.assertEqual(backend.calls[False], 2)
        backend.send(channel, {"n": 1})

    def test_stopping_drops_the_retries(self):
        backend = PausesFailingBackend(pauses=1)
        bridge, clock = self.clocked(backend)
        with self.assertLogs("channels.server", "DEBUG"):
            on_reactor(bridge.pause, new_name("!http.response"), True)
            self.settle(bridge)
        self.assertEqual(len(on_reactor(clock.getDelayedCalls)), 1)
        on_reactor(bridge.stop)
        self.assertEqual(on_reactor(clock.getDelayedCalls), [])


class LeavingBackend(InMemoryChannelBackend):
    """Records each ``discard_from_groups`` call; the first ``failures`` fail."""

    def __init__(self, failures: int = 0):
        super().__init__()
        self.failures = failures
        self.leaves = []

    def _discard_from_groups(self, process, channels):
        self.leaves.append(list(channels))
        if len(self.leaves) <= self.failures:
            raise ChannelBackendUnavailable("Redis is unreachable")
        super()._discard_from_groups(process, channels)


class LeaveTests(BridgeTestCase):
    def test_sockets_closed_in_one_turn_leave_in_one_call(self):
        backend = LeavingBackend()
        clock = Clock()
        bridge = self.bridge(backend, clock)
        closed = [new_name("!websocket.send") for _ in range(3)]
        on_reactor(lambda: [bridge.leave_groups(channel) for channel in closed])
        self.settle(bridge)
        self.assertEqual(backend.leaves, [])  # the turn has not ended
        on_reactor(clock.advance, 0)
        self.settle(bridge)
        self.assertEqual(backend.leaves, [closed])

    def test_a_failed_leave_is_tried_again(self):
        backend = LeavingBackend(failures=1)
        clock = Clock()
        bridge = self.bridge(backend, clock)
        closed = new_name("!websocket.send")
        with self.assertLogs("channels.server", "WARNING") as logs:
            on_reactor(bridge.leave_groups, closed)
            on_reactor(clock.advance, 0)
            self.settle(bridge)
            on_reactor(clock.advance, bridge.change_retry)
            self.settle(bridge)
        self.assertEqual(backend.leaves, [[closed], [closed]])
        self.assertIn("trying again", logs.output[0])
