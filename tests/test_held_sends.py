"""What consumers send is held briefly (``channels.backends.outgoing``):
it goes in order, together for a worker's batch, at once when asked, and
never long after it was sent, even from a consumer that runs long."""

import threading
from unittest import mock

from django.http import HttpResponse, StreamingHttpResponse
from django.test import SimpleTestCase

from channels import Channel, Group
from channels.backends import outgoing
from channels.backends.memory import InMemoryChannelBackend
from channels.decorators import linearize
from channels.exceptions import ChannelFull, InvalidMessage
from channels.messages.http import BODY_CHUNK_SIZE
from channels.worker import Worker
from channels.worker.handler import view_consumer
from tests.support.http_client import send_request
from tests.support.redis_servers import redis_backend, shared_servers
from tests.support.worker_threads import wait_for


def drain(backend, channel):
    """What waits on ``channel`` now, in order (taken)."""
    taken = []
    while (content := backend.receive_many([channel])[1]) is not None:
        taken.append(content)
    return taken


class HeldResponsesTests(SimpleTestCase):
    """A response that fits in one message goes with the batch's other
    replies; one in several goes as it is made, as its client waits."""

    def respond(self, view):
        """What the reply channel holds once the response is sent, while
        the consumer still runs, and then after it."""
        inside = []
        answer = view_consumer(view)

        def consumer(message):
            answer(message)
            inside.append(drain(message.channel_backend, message.reply_channel.name))

        backend = InMemoryChannelBackend(routing={"http.request": consumer})
        reply = send_request(backend, "GET", b"/")
        channel, content = backend.receive_many(["http.request"])
        Worker(backend, channels=["http.request"]).serve(channel, content)
        return inside[0], drain(backend, reply)

    def test_a_response_in_one_message_goes_with_the_batch(self):
        inside, after = self.respond(lambda request: HttpResponse(b"hello"))
        self.assertEqual(inside, [])
        self.assertEqual([(m["status"], m["content"], m["more_content"]) for m in after],
                         [(200, b"hello", False)])

    def test_a_response_in_several_messages_goes_as_it_is_made(self):
        big = b"x" * (BODY_CHUNK_SIZE + 1)
        inside, after = self.respond(lambda request: HttpResponse(big))
        self.assertEqual((b"".join(m["content"] for m in inside), after), (big, []))
        inside, after = self.respond(lambda request: StreamingHttpResponse(iter([b"a", b"b"])))
        self.assertEqual(([m["content"] for m in inside], after), ([b"", b"a", b"b", b""], []))


class HeldInAConsumerTests(SimpleTestCase):
    """One consumer run as the worker runs it (``Worker.serve``)."""

    def run_consumer(self, consumer, backend=None, content=None):
        backend = backend or InMemoryChannelBackend(routing={"test.in": consumer},
                                                    channel_capacity={"test.full": 1})
        Worker(backend, channels=["test.in"]).serve("test.in", content or {})
        return backend

    def test_sends_go_once_a_quick_consumer_returns_in_order(self):
        inside = []

        def consumer(message):
            Channel("test.out", channel_backend=message.channel_backend).send({"n": 1})
            Channel("test.out", channel_backend=message.channel_backend).send({"n": 2})
            inside.append(drain(message.channel_backend, "test.out"))

        backend = self.run_consumer(consumer)
        self.assertEqual(inside, [[]])
        self.assertEqual(drain(backend, "test.out"), [{"n": 1}, {"n": 2}])

    def test_immediately_sends_what_is_held_first_then_its_own(self):
        inside = []

        def consumer(message):
            out = Channel("test.out", channel_backend=message.channel_backend)
            out.send({"n": 1})
            out.send({"n": 2}, immediately=True)
            inside.append(drain(message.channel_backend, "test.out"))
            out.send({"n": 3})

        backend = self.run_consumer(consumer)
        self.assertEqual(inside, [[{"n": 1}, {"n": 2}]])
        self.assertEqual(drain(backend, "test.out"), [{"n": 3}])

    def test_immediately_raises_channel_full_in_the_consumer(self):
        raised = []

        def consumer(message):
            full = Channel("test.full", channel_backend=message.channel_backend)
            try:
                full.send({"n": 2}, immediately=True)
            except ChannelFull as exc:
                raised.append(exc)

        backend = InMemoryChannelBackend(routing={"test.in": consumer},
                                         channel_capacity={"test.full": 1})
        backend.send("test.full", {"n": 1})
        self.run_consumer(consumer, backend)
        self.assertEqual(len(raised), 1)
        self.assertEqual(drain(backend, "test.full"), [{"n": 1}])

    def test_a_full_channel_costs_its_messages_only_logged_once(self):
        def consumer(message):
            backend = message.channel_backend
            for n in range(3):
                backend.send("test.full", {"n": n})
            backend.send("test.out", {"n": "ok"})

        with self.assertLogs("channels.worker", "WARNING") as logs:
            backend = self.run_consumer(consumer)
        self.assertEqual(len(logs.records), 1)
        self.assertIn("2 message(s) that consumers sent were dropped: channel full", logs.output[0])
        self.assertIn("'test.full'", logs.output[0])
        self.assertEqual(drain(backend, "test.full"), [{"n": 0}])
        self.assertEqual(drain(backend, "test.out"), [{"n": "ok"}])

    def test_a_bad_message_fails_in_the_consumer_that_sent_it(self):
        raised = []

        def consumer(message):
            try:
                Channel("test.out", channel_backend=message.channel_backend).send({"x": object()})
            except InvalidMessage as exc:
                raised.append(exc)

        backend = self.run_consumer(consumer)
        self.assertEqual(len(raised), 1)
        self.assertEqual(drain(backend, "test.out"), [])

    def test_group_and_channel_sends_keep_their_order(self):
        def consumer(message):
            backend = message.channel_backend
            Channel("test.out", channel_backend=backend).send({"n": 1})
            Group("g", channel_backend=backend).send({"n": 2})
            Channel("test.out", channel_backend=backend).send({"n": 3})

        backend = InMemoryChannelBackend(routing={"test.in": consumer})
        backend.group_add("g", "test.out")
        self.run_consumer(consumer, backend)
        self.assertEqual(drain(backend, "test.out"), [{"n": 1}, {"n": 2}, {"n": 3}])

    def test_what_a_failing_consumer_sent_still_goes(self):
        def consumer(message):
            message.channel_backend.send("test.out", {"n": 1})
            raise RuntimeError("broke after sending")

        with self.assertLogs("channels.worker", "ERROR"):
            backend = self.run_consumer(consumer)
        self.assertEqual(drain(backend, "test.out"), [{"n": 1}])

    def test_outside_a_worker_sends_go_at_once(self):
        backend = InMemoryChannelBackend()
        Channel("test.out", channel_backend=backend).send({"n": 1})
        self.assertEqual(drain(backend, "test.out"), [{"n": 1}])


class HeldInABatchTests(SimpleTestCase):
    """A worker's loop holds its batch's sends until the batch is done,
    unless a consumer in it runs long."""

    def setUp(self):
        self.inside = {}
        self.go_on = threading.Event()
        self.addCleanup(self.go_on.set)

    def start(self, backend, worker=None):
        worker = worker or Worker(backend, channels=["test.in"], prefetch=8)
        worker.poll_timeout = 0.05
        thread = threading.Thread(target=worker.run, daemon=True)
        self.addCleanup(thread.join, 5)
        self.addCleanup(worker.stop)
        thread.start()
        return worker

    def queued(self, consumer, contents):
        """A memory backend that routes ``test.in`` to ``consumer``, with
        ``contents`` waiting there."""
        backend = InMemoryChannelBackend(routing={"test.in": consumer})
        for content in contents:
            backend.send("test.in", content)
        return backend

    def collect(self, backend, seen, count, channel="test.out"):
        """Take what arrives on ``channel`` into ``seen`` until it holds
        ``count`` messages."""
        wait_for(lambda: seen.extend(drain(backend, channel)) or len(seen) >= count)

    def test_a_batch_sends_once_its_last_consumer_returns(self):
        def consumer(message):
            backend = message.channel_backend
            backend.send("test.out", {"n": message["n"]})
            if message["n"] == 2:
                self.inside["waiting"] = drain(backend, "test.out")

        backend = self.queued(consumer, [{"n": n} for n in range(3)])
        self.start(backend)
        seen = []
        self.collect(backend, seen, 3)
        self.assertEqual(self.inside["waiting"], [])
        self.assertEqual(seen, [{"n": 0}, {"n": 1}, {"n": 2}])

    def test_what_ran_stays_in_hand_until_its_sends_go(self):
        # A worker killed before its flush leaves these to its heartbeat's
        # readers, who answer their clients (docs/heartbeats.rst).
        def consumer(message):
            message.channel_backend.send("test.out", {"n": message["n"]})
            self.inside[message["n"]] = worker.in_hand()

        backend = self.queued(consumer, [{"n": n, "reply_channel": f"!test.reply.{n}"}
                                         for n in range(2)])
        worker = Worker(backend, channels=["test.in"], prefetch=8)
        self.start(backend, worker)
        wait_for(lambda: len(self.inside) == 2)
        self.assertEqual(self.inside[1], [["test.in", "!test.reply.0"],
                                          ["test.in", "!test.reply.1"]])
        wait_for(lambda: worker.in_hand() == [])
        self.assertEqual(drain(backend, "test.out"), [{"n": 0}, {"n": 1}])

    def test_a_long_consumer_holds_nothing_back_for_long(self):
        def consumer(message):
            backend = message.channel_backend
            backend.send("test.out", {"n": message["n"]})
            if message["n"] == 1:
                self.go_on.wait(10)
            backend.send("test.out", {"n": message["n"], "end": True})

        backend = self.queued(consumer, [{"n": n} for n in range(2)])
        self.start(backend)
        # What was sent before message 1's consumer and by it goes while
        # it still runs (a streamed response, progress reports)...
        seen = []
        self.collect(backend, seen, 3)
        self.assertEqual(seen, [{"n": 0}, {"n": 0, "end": True}, {"n": 1}])
        # ...and the rest once it returns.
        self.go_on.set()
        self.collect(backend, seen, 4)
        self.assertEqual(seen[3], {"n": 1, "end": True})

    def test_linearize_sends_before_it_lets_the_connection_go(self):
        @linearize
        def locked(message):
            message.reply_channel.send({"n": message["n"]})

        def consumer(message):
            if message["n"] == 0:
                locked(message)
            else:
                self.go_on.wait(10)

        backend = self.queued(consumer, [{"n": n, "reply_channel": "!test.reply"}
                                         for n in range(2)])
        # Not the watcher's doing: it would wait a minute.
        self.enterContext(mock.patch.object(outgoing, "FLUSH_AFTER", 60))
        self.start(backend)
        seen = []
        self.collect(backend, seen, 1, "!test.reply")
        self.assertEqual(seen, [{"n": 0}])


class HeldOnRedisTests(SimpleTestCase):
    """The batch's replies to several response channels go in one call per
    shard, and each arrives."""

    def test_replies_of_a_batch_arrive_on_two_shards(self):
        def consumer(message):
            message.reply_channel.send({"n": message["n"]})

        backend = redis_backend(shared_servers(2), routing={"test.in": consumer})
        self.addCleanup(backend.close)
        replies = [Channel.new_name("!test.a"), Channel.new_name("!test.b")]
        for n in range(6):
            backend.send("test.in", {"n": n, "reply_channel": replies[n % 2]})
        worker = Worker(backend, channels=["test.in"], prefetch=8)
        worker.poll_timeout = 0.05
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        self.addCleanup(thread.join, 5)
        self.addCleanup(worker.stop)
        got = {reply: [] for reply in replies}

        def arrived():
            for reply in replies:
                got[reply] += [c["n"] for c in drain(backend, reply)]
            return sum(map(len, got.values())) == 6

        wait_for(arrived, 10)
        self.assertEqual(got, {replies[0]: [0, 2, 4], replies[1]: [1, 3, 5]})


class PerProcessTests(SimpleTestCase):
    """The watcher is a thread: a forked child, which inherits none, makes
    its own (``channels.process.PerProcess``)."""

    def test_one_per_process_and_a_new_one_after_a_fork(self):
        import os

        from channels.process import PerProcess

        made = []
        instance = PerProcess(lambda: made.append(os.getpid()) or object())
        first = instance()
        self.assertIs(instance(), first)
        child = os.fork()
        if child == 0:
            status = 1
            try:
                status = 0 if instance() is not first and made[-1] == os.getpid() else 2
            finally:
                os._exit(status)
        _, status = os.waitpid(child, 0)
        self.assertEqual(os.waitstatus_to_exitcode(status), 0)
        self.assertIs(instance(), first)
        self.assertEqual(made, [os.getpid()])
