"""runworker --threads, --processes and --max-messages as real processes:
runwsserver and runworker on Redis (throwaway servers), the consumers of
tests/concurrency_consumers.py.

Concurrency is asserted from the times the consumers recorded (which runs
overlapped), never from wall-clock bounds; every wait is for a condition,
with a generous deadline."""

import os
import re
import signal
import socket
import threading

import requests
import websocket
from django.test import SimpleTestCase

from channels.heartbeats import WORKER, live
from tests.support.worker_threads import wait_for
from tests.test_liveness_processes import Answer, Cluster

ROUTING = "tests.concurrency_consumers.routing"
SETTINGS = "tests.concurrency_settings"


def cluster_of(testcase: SimpleTestCase, *server_options: str, ttl: float = 5) -> Cluster:
    cluster = Cluster(testcase, routing=ROUTING, settings=SETTINGS,
                      heartbeat_interval=1, heartbeat_ttl=ttl)
    cluster.start_server(*server_options)
    return cluster


def serving(cluster: Cluster) -> None:
    """Wait until the server answers through a worker: it reads the
    workers' heartbeats every interval, and answers 503 until it has seen
    one."""
    wait_for(lambda: requests.get(cluster.url("/wait/?ms=0&name=ready"),
                                  timeout=60).status_code == 200, timeout=60)


def worker_pids(cluster: Cluster) -> set[int]:
    return {record["pid"] for record in live(WORKER, cluster.backend)}


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of intervals running at one moment."""
    return max(sum(start <= moment < end for start, end in intervals)
               for moment, _ in intervals)


def waits(cluster: Cluster) -> dict[str, tuple[float, float]]:
    return {fields[1]: (float(fields[2]), float(fields[3]))
            for fields in (line.split() for line in cluster.runs()) if fields[0] == "wait"}


class ThreadsTests(SimpleTestCase):
    def test_threads_run_consumers_at_once_and_the_heartbeat_counts_them(self):
        cluster = cluster_of(self)
        worker = cluster.start_worker("--threads", "8")
        serving(cluster)
        # One record for the process, counting its threads.
        wait_for(lambda: [(record["pid"], record["threads"])
                          for record in live(WORKER, cluster.backend)]
                 == [(worker.popen.pid, 8)], timeout=30)

        answers = [Answer(cluster.url(f"/wait/?ms=3000&name=w{n}")) for n in range(8)]
        for answer in answers:
            self.assertEqual(answer.result().status_code, 200)
        runs = waits(cluster)
        self.assertEqual(most_at_once([runs[f"w{n}"] for n in range(8)]), 8, runs)
        wait_for(lambda: live(WORKER, cluster.backend)[0]["handled"] == 9, timeout=30)

    def test_one_connections_messages_run_in_order_on_16_threads(self):
        cluster = cluster_of(self)
        cluster.start_worker("--threads", "16")
        serving(cluster)
        ws = websocket.create_connection(f"ws://127.0.0.1:{cluster.port}/", timeout=60)
        sent = [str(n) for n in range(60)]
        for text in sent:
            ws.send(text)
        # The channel session counted them in order: the nth reply is "n n+1".
        replies = [ws.recv() for _ in sent]
        ws.close()
        self.assertEqual(replies, [f"{n} {int(n) + 1}" for n in sent])
        runs = [line.split() for line in cluster.runs() if line.startswith("ws ")]
        self.assertEqual([fields[1] for fields in runs], sent)
        # None started before the one ahead of it had ended, although
        # several threads ran them.
        times = [(float(fields[3]), float(fields[4])) for fields in runs]
        self.assertEqual(most_at_once(times), 1)
        for (_, end), (start, _) in zip(times, times[1:], strict=False):
            self.assertLessEqual(end, start)
        self.assertGreater(len({fields[5] for fields in runs}), 1)

    def test_sigterm_lets_each_thread_finish_its_message(self):
        self.stops_cleanly(signal.SIGTERM)

    def test_sighup_stops_a_plain_worker_as_sigterm_does(self):
        self.stops_cleanly(signal.SIGHUP)

    def stops_cleanly(self, signum):
        cluster = cluster_of(self)
        worker = cluster.start_worker("--threads", "4")
        serving(cluster)
        blocked = [Answer(cluster.url(f"/block/?name=b{n}")) for n in range(2)]
        wait_for(lambda: {"start b0", "start b1"} <= set(cluster.runs()), timeout=30)
        worker.popen.send_signal(signum)
        worker.wait_for_line("Worker stopping: 2 message")
        for n in range(2):
            cluster.release(f"b{n}")
        for answer in blocked:
            self.assertEqual(answer.result().status_code, 200)
        self.assertEqual(worker.popen.wait(60), 0)
        self.assertIn("Worker stopped.", worker.output())

    def test_a_consumer_past_the_shutdown_timeout_is_cut_off(self):
        cluster = cluster_of(self)
        worker = cluster.start_worker("--threads", "2", "--shutdown-timeout", "1")
        serving(cluster)
        blocked = Answer(cluster.url("/block/?name=late"))
        wait_for(lambda: "start late" in cluster.runs(), timeout=30)
        worker.popen.send_signal(signal.SIGTERM)
        self.assertEqual(worker.popen.wait(60), 3)
        self.assertIn("exiting without them (1 message(s) in hand)", worker.output())
        # Its heartbeat expires as a dead worker's: the client is answered.
        response = blocked.result()
        self.assertEqual(response.status_code, 503)
        self.assertIn("The worker handling this request stopped", response.text)
        cluster.release("late")


class SupervisorTests(SimpleTestCase):
    def test_a_killed_child_is_restarted_and_logged_once(self):
        cluster = cluster_of(self)
        supervisor = cluster.start_worker("--processes", "2", "--threads", "2")
        wait_for(lambda: len(worker_pids(cluster)) == 2, timeout=60)
        serving(cluster)
        first = worker_pids(cluster)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: len(worker_pids(cluster) - first) == 1
                 and victim not in worker_pids(cluster), timeout=60)
        self.assertEqual(sum("was killed by SIGKILL" in line for line in supervisor.lines), 1)
        self.assertEqual(requests.get(cluster.url("/wait/?ms=0&name=after"),
                                      timeout=30).status_code, 200)
        self.assertEqual(supervisor.stop(60), 0)

    def test_children_that_keep_dying_are_logged_once_and_restarted_later_each_time(self):
        # The dead children's records outlive the restarts, so that the
        # server never sees no worker and answers (and cancels) what waits.
        cluster = cluster_of(self, "--http-timeout", "20", ttl=60)
        supervisor = cluster.start_worker("--processes", "1", "--prefetch", "1")
        serving(cluster)
        # Each of these kills the child that runs it, soon after its start.
        dying = [Answer(cluster.url(f"/die/?name=x{n}")) for n in range(3)]
        wait_for(lambda: sum(line.startswith("die ") for line in cluster.runs()) == 3,
                 timeout=120)
        wait_for(lambda: requests.get(cluster.url("/wait/?ms=0&name=after"),
                                      timeout=60).status_code == 200, timeout=120)
        deaths = [line for line in supervisor.lines if "exited with status 1" in line]
        self.assertEqual(len(deaths), 1, supervisor.output())
        self.assertIn("starting another in 0.5 s", deaths[0])
        self.assertEqual(sum("is running" in line for line in supervisor.lines), 4)
        # Their clients are answered, at the HTTP timeout at the latest.
        for answer in dying:
            self.assertIn(answer.result().status_code, (503, 504))
        self.assertEqual(supervisor.stop(60), 0)

    def test_sigterm_drains_every_child(self):
        cluster = cluster_of(self)
        supervisor = cluster.start_worker("--processes", "2", "--threads", "2")
        wait_for(lambda: len(worker_pids(cluster)) == 2, timeout=60)
        serving(cluster)
        children = worker_pids(cluster)
        blocked = [Answer(cluster.url(f"/block/?name=d{n}")) for n in range(3)]
        wait_for(lambda: {f"start d{n}" for n in range(3)} <= set(cluster.runs()), timeout=30)
        supervisor.popen.send_signal(signal.SIGTERM)
        supervisor.wait_for_line("Stopping 2 worker process")
        wait_for(lambda: sum("Worker stopping" in line for line in supervisor.lines) == 2,
                 timeout=30)
        for n in range(3):
            cluster.release(f"d{n}")
        for answer in blocked:
            self.assertEqual(answer.result().status_code, 200)
        self.assertEqual(supervisor.popen.wait(60), 0)
        self.assertIn("Workers stopped.", supervisor.output())
        for pid in children:
            self.assertFalse(os.path.exists(f"/proc/{pid}") and _running(pid), pid)

    def test_sighup_replaces_children_one_at_a_time_losing_no_request(self):
        cluster = cluster_of(self)
        supervisor = cluster.start_worker("--processes", "2", "--threads", "2")
        wait_for(lambda: len(worker_pids(cluster)) == 2, timeout=60)
        serving(cluster)
        before = worker_pids(cluster)
        statuses = []
        stop = threading.Event()

        def load():
            while not stop.is_set():
                statuses.append(requests.get(cluster.url("/wait/?ms=20&name=load"),
                                             timeout=60).status_code)

        client = threading.Thread(target=load, daemon=True)
        client.start()
        wait_for(lambda: len(statuses) > 5, timeout=30)
        supervisor.popen.send_signal(signal.SIGHUP)
        wait_for(lambda: len(worker_pids(cluster)) == 2 and not worker_pids(cluster) & before,
                 timeout=120)
        served = len(statuses)
        wait_for(lambda: len(statuses) > served + 5, timeout=30)
        stop.set()
        client.join(60)
        self.assertEqual(set(statuses), {200})
        # One at a time, each new one running before the old one stopped.
        lines = list(supervisor.lines)
        reload = lines[next(i for i, line in enumerate(lines) if "Reloading" in line):]
        events = [match.groups() for line in reload if (match := re.match(
            r"Worker process (\d) \(pid \d+\) (is running|stopped)", line))]
        self.assertEqual(events, [("1", "is running"), ("1", "stopped"),
                                  ("2", "is running"), ("2", "stopped")])
        self.assertEqual(supervisor.stop(60), 0)

    def test_each_process_serves_its_metrics_on_its_own_port(self):
        cluster = cluster_of(self)
        port = free_port_pair()
        supervisor = cluster.start_worker("--processes", "2", "--threads", "3",
                                          "--metrics", f"127.0.0.1:{port}")
        serving(cluster)
        for number in (1, 2):
            supervisor.wait_for_line(rf"Metrics at http://127\.0\.0\.1:{port + number - 1}/")
            page = requests.get(f"http://127.0.0.1:{port + number - 1}/metrics", timeout=30)
            self.assertIn("channels_worker_threads 3.0", page.text)
        self.assertEqual(supervisor.stop(60), 0)

    def test_max_messages_replaces_the_process(self):
        cluster = cluster_of(self)
        supervisor = cluster.start_worker("--max-messages", "40")
        serving(cluster)
        pids = []

        def served_by() -> int:
            response = requests.get(cluster.url(f"/wait/?ms=0&name=m{len(pids)}"), timeout=60)
            self.assertEqual(response.status_code, 200)
            pids.append(int(response.text))
            return pids[-1]

        # The first process serves its 4 and goes on until its replacement
        # runs: the slot is never empty, no request is refused.
        first = served_by()
        wait_for(lambda: served_by() != first, timeout=120)
        self.assertGreaterEqual(pids.count(first), 40 - 1)  # the first: serving()
        supervisor.wait_for_line(rf"Worker process 1 \(pid {first}\) stopped", timeout=60)
        self.assertEqual(sum("reached its message limit" in line
                             for line in supervisor.lines), 1)
        self.assertEqual(supervisor.stop(60), 0)


def free_port_pair() -> int:
    """A port free on 127.0.0.1 whose next one is free too."""
    for _ in range(100):
        with socket.socket() as first:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            with socket.socket() as second:
                try:
                    second.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no two free ports in a row")


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False

