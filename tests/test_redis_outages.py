"""The Redis backend through outages: a shard killed and restarted while
messages flow, a shard left down, a worker through a restart. Each test has
its own servers, since it stops them."""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

from django.test import SimpleTestCase
from twisted.internet import reactor

from channels.exceptions import ChannelBackendUnavailable
from channels.interfaces.threaded import ensure_reactor
from channels.names import new_name, process_wildcard
from channels.worker import Worker
from tests.support.redis_servers import RedisServer, redis_backend
from tests.support.redis_tests import on_shard
from tests.support.worker_threads import wait_for
from tests.test_redis_reactor import in_reactor


def sent(backend, channel, content):
    """Whether a send worked (for wait_for while a server comes back)."""
    try:
        backend.send(channel, content)
    except ChannelBackendUnavailable:
        return False
    return True


class OutageTestCase(SimpleTestCase):
    shards = 3

    def setUp(self):
        self.servers = [RedisServer().start() for _ in range(self.shards)]
        for server in self.servers:
            self.addCleanup(server.cleanup)

    def make_backend(self, **options):
        backend = redis_backend(self.servers, **options)
        self.addCleanup(backend.close)
        return backend


class ShardRestartTests(OutageTestCase):
    def test_killed_and_restarted_mid_run(self):
        receiver = self.make_backend(capacity=10000)
        sender = self.make_backend(capacity=10000, prefix=receiver.prefix)
        received, failed_sends = [], []
        sending_done = threading.Event()

        def receive():
            idle_since = None
            while True:
                channel, message = receiver.receive_many_blocking(["q"], 0.1)
                if channel is not None:
                    received.append(message["n"])
                    idle_since = None
                elif sending_done.is_set():
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since > 1.5:
                        return

        def send():
            for n in range(800):
                try:
                    sender.send("q", {"n": n})
                except ChannelBackendUnavailable:
                    failed_sends.append(n)
                time.sleep(0.002)
            sending_done.set()

        with self.assertLogs("channels.backends.redis", "WARNING") as logs:
            threads = [threading.Thread(target=receive), threading.Thread(target=send)]
            for thread in threads:
                thread.start()
            time.sleep(0.4)
            self.servers[1].stop()
            time.sleep(0.6)
            self.servers[1].start()
            for thread in threads:
                thread.join(30)
        # Normal traffic went around the dead shard: no send failed.
        self.assertEqual(failed_sends, [])
        # Never twice; lost at most what the killed server held (it was
        # killed, not shut down), which a busy receiver keeps small.
        self.assertEqual(len(received), len(set(received)))
        self.assertGreater(len(received), 800 * 0.9)
        # The restarted shard takes its share again.
        client = self.servers[1].client()
        self.assertGreater(client.info("commandstats")["cmdstat_evalsha"]["calls"], 10)
        client.close()
        # Each backend logged the outage once and the recovery once.
        down = [line for line in logs.output if "is unreachable" in line]
        up = [line for line in logs.output if "reachable again" in line]
        self.assertTrue(1 <= len(down) <= 2, logs.output)
        self.assertTrue(1 <= len(up) <= 2, logs.output)

    def test_response_channel_and_group_on_a_restarted_shard(self):
        backend = self.make_backend()
        fixed = on_shard(backend, 2)
        backend.send(fixed, {"n": 1})
        self.servers[2].stop()
        started = time.monotonic()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.send(fixed, {"n": 2})
        with self.assertRaises(ChannelBackendUnavailable):
            backend.receive_many_blocking([fixed], 1)
        self.assertLess(time.monotonic() - started, 3)  # not COMMAND_TIMEOUT each
        self.servers[2].start()
        wait_for(lambda: sent(backend, fixed, {"n": 3}), timeout=5)
        self.assertEqual(backend.receive_many_blocking([fixed], 1), (fixed, {"n": 3}))


class ShardLeftDownTests(OutageTestCase):
    def test_normal_channels_flow_through_the_others(self):
        backend = self.make_backend(capacity=1000)
        for n in range(30):  # every shard holds some
            backend.send("q", {"n": n})
        self.servers[0].stop()
        started = time.monotonic()
        for n in range(30, 130):
            backend.send("q", {"n": n})
        self.assertEqual(backend.send_many([("q", {"n": n}) for n in range(130, 160)]), [])
        got = set()
        while (message := backend.receive_many_blocking(["q"], 0.3))[0] is not None:
            got.add(message[1]["n"])
        self.assertTrue(set(range(30, 160)) <= got)
        self.assertLess(time.monotonic() - started, 5)

    def test_group_reaches_the_live_shards_then_reports(self):
        backend = self.make_backend()
        dead, alive = on_shard(backend, 0), on_shard(backend, 1)
        group = next(f"room{n}" for n in range(100) if backend.placement.group_shard(
            f"room{n}") == 1)
        backend.group_add(group, dead)
        backend.group_add(group, alive)
        self.servers[0].stop()
        with self.assertRaisesMessage(ChannelBackendUnavailable, self.servers[0].url[8:]):
            backend.send_group(group, {"hi": True})
        self.assertEqual(backend.receive_many([alive]), (alive, {"hi": True}))

    def test_a_wait_on_all_shards_takes_back_a_returning_one(self):
        backend = self.make_backend()
        self.servers[2].stop()
        fixed = on_shard(backend, 2)
        self.assertEqual(backend.receive_many_blocking(["q", fixed], 0.2), (None, None))
        self.servers[2].start()
        got = []
        thread = threading.Thread(
            target=lambda: got.append(backend.receive_many_blocking(["q", fixed], 10)))
        thread.start()
        sender = self.make_backend(prefix=backend.prefix)
        sender.send(fixed, {"back": True})
        thread.join(10)
        self.assertEqual(got, [(fixed, {"back": True})])


class InboxOutageTests(OutageTestCase):
    shards = 1

    def test_interface_reader_through_a_restart(self):
        backend = self.make_backend()
        name, wildcard = new_name("!websocket.send"), process_wildcard("!websocket.send")
        self.servers[0].stop()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.receive_batch([wildcard], timeout=1)
        self.servers[0].start()
        wait_for(lambda: sent(backend, name, {"ok": 1}), timeout=5)
        self.assertEqual(backend.receive_batch([wildcard], timeout=1), [(name, {"ok": 1})])

    def test_a_silent_shard_fails_an_inbox_read_in_bounded_time(self):
        # SIGSTOP: the connection stays open and nothing answers. Without a
        # bound the pop would wait for TCP keepalive (hours by default).
        backend = self.make_backend()
        wildcard = process_wildcard("!websocket.send")
        self.assertEqual(backend.receive_batch([wildcard], timeout=0.1), [])  # connected
        os.kill(self.servers[0].process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.servers[0].process.pid, signal.SIGCONT)
        with self.assertRaisesMessage(ChannelBackendUnavailable, "Timeout"):
            backend.receive_batch([wildcard], timeout=0.2)
        self.assertTrue(backend.shards[0].down)

    def test_a_silent_shard_fails_a_blocking_pop_once_its_margin_is_past(self):
        backend = self.make_backend()
        self.assertEqual(backend.receive_batch(["q"], timeout=0.1), [])  # connected
        os.kill(self.servers[0].process.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, self.servers[0].process.pid, signal.SIGCONT)
        with self.assertRaisesMessage(ChannelBackendUnavailable, "Timeout"):
            backend.receive_batch(["q"], timeout=0.2)  # a worker's pop: BLMPOP at once
        self.assertTrue(backend.shards[0].down)


class WorkerOutageTests(OutageTestCase):
    shards = 1

    def test_an_outage_is_logged_once_with_what_it_cost_and_the_worker_keeps_serving(self):
        done = []
        reply = new_name("!http.response")

        def answer(message):
            done.append(message["n"])
            message.reply_channel.send({"n": message["n"]})

        backend = self.make_backend(routing={"test.r": answer})
        worker = Worker(backend, channels=["test.r"])
        worker.poll_timeout = 0.05
        thread = threading.Thread(target=worker.run, daemon=True)
        with (self.assertNoLogs("channels.worker", "INFO"),
              self.assertLogs("channels.backends.redis", "WARNING") as logs):
            thread.start()
            backend.send("test.r", {"n": 1, "reply_channel": reply})
            wait_for(lambda: done == [1])
            self.servers[0].stop()
            for n in range(3):  # each refused at once, none logged
                with self.assertRaises(ChannelBackendUnavailable):
                    backend.send("test.r", {"n": n + 10, "reply_channel": reply})
            time.sleep(1.5)  # some thirty failed receives
            self.servers[0].start()
            wait_for(lambda: sent(backend, "test.r", {"n": 2, "reply_channel": reply}),
                     timeout=5)
            wait_for(lambda: len(done) == 2)
            worker.stop()
            thread.join(5)
        self.assertEqual([line.split(":")[0] for line in logs.output], ["ERROR", "WARNING"])
        self.assertIn("is unreachable", logs.output[0])
        # The three refused, and the failed tries of the wait for it to
        # come back.
        lost = int(re.search(r"; (\d+) message\(s\) could not be sent", logs.output[1])[1])
        self.assertGreaterEqual(lost, 3)
        self.assertIn("is reachable again after", logs.output[1])


class RefusalTests(OutageTestCase):
    shards = 1

    def test_out_of_memory_is_unavailable_not_a_redis_error(self):
        backend = self.make_backend(capacity=100000)
        client = self.servers[0].client()
        self.addCleanup(client.close)
        client.config_set("maxmemory", "2mb")
        with self.assertRaisesMessage(ChannelBackendUnavailable, "refused the command"):
            for _ in range(10000):
                backend.send("q", {"x": "y" * 1000})
        client.config_set("maxmemory", "0")
        backend.send("q", {"x": "fits"})  # the shard was never marked down

    def test_a_master_short_of_replicas_is_unavailable_not_a_redis_error(self):
        # min-replicas-to-write, which a Sentinel deployment may set
        # (docs/scaling.rst), refuses writes: pops as well as sends.
        backend = self.make_backend()
        backend.send("q", {"n": 1})
        client = self.servers[0].client()
        self.addCleanup(client.close)
        client.config_set("min-replicas-to-write", "1")
        for call in (lambda: backend.send("q", {"n": 2}),
                     lambda: backend.receive_many(["q"]),
                     lambda: backend.receive_many_blocking(["q"], 1)):
            with self.assertRaisesMessage(ChannelBackendUnavailable,
                                          "refused the command: NOREPLICAS"):
                call()
        ensure_reactor()
        layer_client = backend.layer_client(reactor)
        self.addCleanup(in_reactor, layer_client.stop)
        ((_, error),) = in_reactor(layer_client.send_batch, [("q", b"\x80")])
        self.assertIsInstance(error, ChannelBackendUnavailable)
        self.assertIn("refused the command: NOREPLICAS", str(error))
        client.config_set("min-replicas-to-write", "0")
        self.assertEqual(backend.receive_many(["q"]), ("q", {"n": 1}))


class AddressFormTests(SimpleTestCase):
    """HOSTS forms against real servers: a password, a database number, a
    Unix socket, TLS."""

    def test_password_and_database(self):
        server = RedisServer("--requirepass", "s3cret").start()
        self.addCleanup(server.cleanup)
        backend = redis_backend([], hosts=[f"redis://:s3cret@127.0.0.1:{server.port}/3"])
        self.addCleanup(backend.close)
        backend.send("q", {"n": 1})
        client = server.client(password="s3cret", db=3)
        self.addCleanup(client.close)
        self.assertEqual(client.llen(f"{backend.prefix}c:q"), 1)
        self.assertEqual(backend.receive_many(["q"]), ("q", {"n": 1}))
        wrong = redis_backend([], hosts=[f"redis://:wrong@127.0.0.1:{server.port}/3"])
        self.addCleanup(wrong.close)
        with self.assertRaises(ChannelBackendUnavailable) as caught:
            wrong.send("q", {})
        self.assertNotIn("wrong", str(caught.exception))

    def test_unix_socket(self):
        server = RedisServer(unix_socket=True).start()
        self.addCleanup(server.cleanup)
        backend = redis_backend([], hosts=[server.url_for(2)])
        self.addCleanup(backend.close)
        name = new_name("!websocket.send")
        backend.send(name, {"n": 1})
        self.assertEqual(backend.receive_batch([process_wildcard("!websocket.send")],
                                               timeout=1), [(name, {"n": 1})])
        client = server.client(db=2)
        self.addCleanup(client.close)
        self.assertEqual(client.dbsize(), 0)  # read: nothing left

    def test_tls(self):
        if shutil.which("openssl") is None:
            self.skipTest("openssl is needed to make a certificate")
        directory = tempfile.mkdtemp(prefix="channels-redis-tls-")
        self.addCleanup(shutil.rmtree, directory, True)
        ca, cert, key = (os.path.join(directory, name) for name in ("ca.pem", "cert.pem",
                                                                     "key.pem"))
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True)
        shutil.copy(cert, ca)  # self-signed: its own authority
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            tls_port = probe.getsockname()[1]
        server = RedisServer("--tls-port", str(tls_port), "--tls-cert-file", cert,
                             "--tls-key-file", key, "--tls-ca-cert-file", ca,
                             "--tls-auth-clients", "no").start()
        self.addCleanup(server.cleanup)
        url = f"rediss://127.0.0.1:{tls_port}?ssl_ca_certs={ca}&ssl_cert_reqs=required"
        backend = redis_backend([], hosts=[url])
        self.addCleanup(backend.close)
        threading.Timer(0.05, backend.send, ("q", {"secure": True})).start()
        self.assertEqual(backend.receive_many_blocking(["q"], 2), ("q", {"secure": True}))
        # A server whose certificate the client does not trust is refused.
        untrusting = redis_backend([], hosts=[f"rediss://127.0.0.1:{tls_port}"])
        self.addCleanup(untrusting.close)
        with self.assertRaises(ChannelBackendUnavailable):
            untrusting.send("q", {})


class SendManyOutageTests(OutageTestCase):
    def test_normal_messages_go_around_a_shard_that_just_died(self):
        backend = self.make_backend(capacity=1000)
        backend.send_many([("q", {"n": -1})])  # connections made everywhere
        self.servers[0].stop()
        # Whichever shard is next in turn, nothing is lost or reported lost.
        for n in range(6):
            self.assertEqual(backend.send_many([("q", {"n": n}), ("q", {"n": n + 100})]), [])
        got = set()
        while (message := backend.receive_many_blocking(["q"], 0.2))[0] is not None:
            got.add(message[1]["n"])
        self.assertTrue(set(range(6)) | set(range(100, 106)) <= got)

    def test_response_messages_on_a_dead_shard_are_reported(self):
        backend = self.make_backend()
        dead, alive = on_shard(backend, 1), on_shard(backend, 2)
        self.servers[1].stop()
        with self.assertRaises(ChannelBackendUnavailable):
            backend.send_many([(alive, {}), (dead, {}), ("q", {})])
        self.assertEqual(backend.receive_many([alive]), (alive, {}))
        self.assertEqual(backend.receive_many_blocking(["q"], 0.5), ("q", {}))
