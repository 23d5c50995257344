"""The interface server's view of the workers (channels/interfaces/liveness.py),
driven by a ``task.Clock``: when it reads and writes heartbeats, when it
concludes that no worker runs or that one died, whom it answers then, and
what it logs. The heartbeats are real (an in-memory backend); the layer
client answers at once, so that only the clock decides what happens when.
The same end to end, with real processes: test_liveness_processes.py."""

from django.test import SimpleTestCase
from twisted.internet import defer
from twisted.internet.task import Clock

from channels.backends.heartbeats import Heartbeats
from channels.backends.layer_client import LayerClient
from channels.backends.memory import InMemoryChannelBackend
from channels.exceptions import ChannelBackendUnavailable
from channels.heartbeats import INTERFACE, RUNNING, STOPPED, WORKER
from channels.interfaces.layer import LayerBridge
from channels.interfaces.liveness import (
    EXPIRY_MARGIN,
    MISSING_POLL,
    NO_WORKER,
    WORKER_LOST,
    ServerLiveness,
    WorkerView,
)
from channels.names import new_name

INTERVAL = 5


class ImmediateClient(LayerClient):
    """The heartbeat calls of a layer client, made at once on the caller's
    thread (the test's clock stands for the reactor)."""

    def __init__(self, backend, clock):
        super().__init__(backend, clock)
        self.writes = []
        self.held = None  # a Deferred standing for a write still under way

    def set_heartbeat(self, kind, id, data, ttl):
        self.writes.append(kind)
        if self.held is not None:
            return self.held
        return defer.maybeDeferred(self.backend.set_heartbeat_encoded, kind, id, data, ttl)

    def heartbeats(self, kind):
        return defer.maybeDeferred(self.backend.heartbeats, kind)


class FailingBackend(InMemoryChannelBackend):
    failing = False

    def _heartbeats(self, kind):
        if self.failing:
            raise ChannelBackendUnavailable("Redis is unreachable")
        return super()._heartbeats(kind)


class Server:
    """What ServerLiveness needs of a ChannelServer."""

    def __init__(self, needed=("http.request",)):
        self.needed_channels = set(needed)
        self.http_connections = {object(), object()}
        self.websockets = {object()}


class Client:
    """A request or socket whose reply channel the server watches."""

    def __init__(self, waiting_on=None):
        self.waiting = waiting_on
        self.lost = []

    def waiting_on(self):
        return self.waiting

    def worker_lost(self, channel, reason):
        self.lost.append((channel, reason))


def worker_record(id, channels=("http.request", "websocket.connect"), in_hand=(), state=RUNNING):
    return {"id": id, "state": state, "channels": list(channels),
            "in_hand": [list(pair) for pair in in_hand]}


class LivenessTestCase(SimpleTestCase):
    def setUp(self):
        self.backend = FailingBackend(heartbeat_interval=INTERVAL, heartbeat_ttl=15)
        # A store that has held heartbeats for a whole TTL.
        self.backend._beats_since -= 15
        self.clock = Clock()
        self.client = ImmediateClient(self.backend, self.clock)
        self.liveness = ServerLiveness(LayerBridge(self.client, clock=self.clock))
        self.liveness.servers.append(Server(("http.request", "websocket.connect")))

    def add_worker(self, *args, ttl=60, **kwargs):
        record = worker_record(*args, **kwargs)
        self.backend.set_heartbeat(WORKER, record["id"], record, ttl=ttl)

    def next_read_in(self):
        [call] = self.clock.getDelayedCalls()
        return call.getTime() - self.clock.seconds()

    def own_record(self):
        [record] = self.backend.heartbeats(INTERFACE).records
        return record


class NoWorkerTests(LivenessTestCase):
    def test_missing_logged_once_answered_then_back(self):
        waiting, answered = Client("http.request"), Client(None)
        reply = new_name("!http.response")
        self.liveness.watch(reply, waiting)
        self.liveness.watch(new_name("!http.response"), answered)
        with self.assertLogs("channels.server", "WARNING") as logs:
            self.liveness.start()
            for _ in range(3):
                self.clock.advance(MISSING_POLL)
        self.assertEqual(logs.output, [
            "ERROR:channels.server:No worker is running for http.request (no live worker's "
            "heartbeat lists it): answering 503 until one does",
            "ERROR:channels.server:No worker is running for websocket.connect (no live "
            "worker's heartbeat lists it): answering 503 until one does"])
        self.assertEqual(self.liveness.refusal("http.request"), NO_WORKER)
        self.assertEqual(waiting.lost, [("http.request", NO_WORKER)])
        self.assertEqual(answered.lost, [])
        # Answered only once its reply channel was in the server's record,
        # for workers to skip.
        self.assertEqual(self.own_record()["cancelled"], [reply])
        self.assertEqual(self.next_read_in(), MISSING_POLL)

        self.add_worker("w1", channels=["http.request"])
        with self.assertLogs("channels.server", "WARNING") as logs:
            self.clock.advance(MISSING_POLL)
            self.clock.advance(INTERVAL)
        self.assertEqual(logs.output, [
            "WARNING:channels.server:A worker is running for http.request again"])
        self.assertIsNone(self.liveness.refusal("http.request"))
        self.assertEqual(self.liveness.refusal("websocket.connect"), NO_WORKER)

    def test_nothing_is_refused_before_a_whole_ttl_was_read(self):
        self.backend.flush()  # the store starts now
        self.liveness.start()
        self.assertIsNone(self.liveness.refusal("http.request"))
        self.assertEqual(self.next_read_in(), INTERVAL)

    def test_nothing_is_refused_after_reads_failed_for_a_ttl(self):
        self.liveness.start()
        self.assertEqual(self.liveness.refusal("http.request"), NO_WORKER)
        self.backend.failing = True
        self.clock.advance(MISSING_POLL)
        self.assertEqual(self.liveness.refusal("http.request"), NO_WORKER)
        self.clock.pump([MISSING_POLL] * 16)
        self.assertIsNone(self.liveness.refusal("http.request"))

    def test_cancelled_reply_channels_leave_the_record_after_expiry(self):
        reply = new_name("!http.response")
        self.liveness.watch(reply, Client("http.request"))
        self.liveness.start()
        self.assertEqual(self.own_record()["cancelled"], [reply])
        self.clock.pump([MISSING_POLL] * int(self.backend.expiry + 1))
        self.assertEqual(self.own_record()["cancelled"], [])


class DeadWorkerTests(LivenessTestCase):
    def test_clients_whose_messages_a_dead_worker_held_are_answered(self):
        request, socket, opened = (new_name("!http.response"), new_name("!websocket.send"),
                                   new_name("!websocket.send"))
        other_process = "!http.response.0123456789abcdef-" + "0" * 32
        taken_over = new_name("!http.response")
        clients = {request: Client("http.request"), socket: Client("websocket.connect"),
                   opened: Client(None), taken_over: Client("http.request")}
        for reply, client in clients.items():
            self.liveness.watch(reply, client)
        self.add_worker("w1", in_hand=[("http.request", request),
                                       ("websocket.connect", socket),
                                       ("websocket.receive", opened),
                                       ("http.request", other_process),
                                       ("http.request", taken_over)])
        self.add_worker("w2", in_hand=[("http.request", taken_over)])
        self.liveness.start()
        self.backend.clear_heartbeat(WORKER, "w1")  # as when it expires
        with self.assertLogs("channels.server", "WARNING") as logs:
            self.clock.advance(INTERVAL)
        self.assertEqual(len(logs.output), 1)
        self.assertIn("Worker w1 (host None, pid None) stopped without a word", logs.output[0])
        self.assertIn("It held 3 message(s) of this server's clients", logs.output[0])
        self.assertEqual(clients[request].lost, [("http.request", WORKER_LOST)])
        self.assertEqual(clients[socket].lost, [("websocket.connect", WORKER_LOST)])
        self.assertEqual(clients[opened].lost, [("websocket.receive", WORKER_LOST)])
        self.assertEqual(clients[taken_over].lost, [])
        # An open socket's reply channel is not cancelled: its disconnect runs.
        self.assertEqual(sorted(self.own_record()["cancelled"]), sorted([request, socket]))
        self.assertEqual(self.own_record()["counts"], {"no_worker": 0, "worker_lost": 3})

    def test_a_worker_that_stopped_cleanly_did_not_die(self):
        reply = new_name("!http.response")
        client = Client("http.request")
        self.liveness.watch(reply, client)
        self.add_worker("w1", in_hand=[("http.request", reply)])
        self.add_worker("w2")
        self.liveness.start()
        self.add_worker("w1", state=STOPPED)
        self.clock.advance(INTERVAL)
        self.backend.clear_heartbeat(WORKER, "w1")
        self.clock.advance(INTERVAL)
        self.assertEqual(client.lost, [])

    def test_no_death_is_concluded_from_a_store_that_restarted(self):
        reply = new_name("!http.response")
        client = Client("http.request")
        self.liveness.watch(reply, client)
        self.add_worker("w1", in_hand=[("http.request", reply)])
        self.liveness.start()
        self.backend.flush()
        self.clock.advance(INTERVAL)
        self.assertEqual(client.lost, [])
        self.assertIsNone(self.liveness.refusal("http.request"))
        # w1 writes itself again: it was alive all along.
        self.add_worker("w1", in_hand=[("http.request", reply)])
        self.backend._beats_since -= 15
        self.clock.advance(INTERVAL)
        self.assertEqual(client.lost, [])

    def test_read_again_when_the_first_record_is_due_to_expire(self):
        self.add_worker("w1", ttl=60)
        self.add_worker("w2", ttl=3)
        self.liveness.start()
        self.assertAlmostEqual(self.next_read_in(), 3 + EXPIRY_MARGIN, delta=0.5)


class WritingTests(LivenessTestCase):
    def test_own_record_every_interval_one_write_at_a_time(self):
        self.add_worker("w1")
        self.liveness.start()
        record = self.own_record()
        self.assertEqual((record["kind"], record["state"]), (INTERFACE, RUNNING))
        self.assertEqual(record["connections"], {"http": 2, "websocket": 1})
        self.clock.advance(INTERVAL)
        self.assertEqual(self.client.writes, [INTERFACE, INTERFACE])
        # A write that has not ended yet: the next waits for it, and the
        # ones asked for meanwhile go as one.
        self.client.held = defer.Deferred()
        first, second, third = (self.liveness.publish() for _ in range(3))
        self.assertEqual(len(self.client.writes), 3)
        self.assertFalse(second.called)
        held, self.client.held = self.client.held, None
        held.callback(None)
        self.assertTrue(first.called and second.called and third.called)
        self.assertEqual(len(self.client.writes), 4)

    def test_a_backend_without_heartbeats_leaves_it_all_off(self):
        class Plain(InMemoryChannelBackend):
            keeps_heartbeats = False

        liveness = ServerLiveness(LayerBridge(ImmediateClient(Plain(), self.clock),
                                              clock=self.clock))
        liveness.servers.append(Server())
        liveness.start()
        self.clock.advance(60)
        self.assertIsNone(liveness.refusal("http.request"))
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertTrue(liveness.stop().called)

    def test_stop_writes_the_record_stopped(self):
        self.liveness.start()
        self.liveness.stop()
        self.assertEqual(self.own_record()["state"], STOPPED)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WorkerViewTests(SimpleTestCase):
    def read(self, view, *records, complete=True):
        for record in records:
            record.setdefault("expires_in", 10)
        return view.update(Heartbeats(list(records), 20 if complete else 1, complete))

    def test_deaths_and_consumers(self):
        view = WorkerView()
        self.assertFalse(view.lacks("http.request"))
        self.assertEqual(self.read(view, worker_record("a"), worker_record("b", ["x"]),
                                   complete=False), [])
        self.assertFalse(view.lacks("http.request"))  # not a whole TTL read yet
        self.assertEqual(self.read(view, worker_record("a")), [])
        self.assertTrue(view.lacks("x"))
        self.assertEqual([r["id"] for r in self.read(view)], ["a"])
        self.assertTrue(view.lacks("http.request"))

    def test_an_incomplete_read_keeps_who_may_be_missing(self):
        view = WorkerView()
        self.read(view, worker_record("a", in_hand=[("http.request", "r1")]))
        self.assertEqual(self.read(view, complete=False), [])
        self.assertEqual(view.held, {"r1"})
        self.assertEqual([r["id"] for r in self.read(view)], ["a"])
