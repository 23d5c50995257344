"""The fault report (``python testproject/benchmark.py faults``) runs: its
machinery on one quick fault, a shard that holds no inbox killed -9 and
restarted, with real processes under load, so that the report cannot rot
between the runs that give docs/benchmarks.rst its figures.

What is asserted is the report's arithmetic and that the fault happened
(the processes logged the outage), not figures: those are the report's."""

import collections
import os
import re
import subprocess
import sys
import unittest

from tests.support.server_process import ROOT

SCRIPT = os.path.join(ROOT, "testproject", "benchmark.py")
if os.path.join(ROOT, "testproject") not in sys.path:
    sys.path.append(os.path.join(ROOT, "testproject"))

from benchmarks.fault_load import Handshake, Load, Message, Request, Socket  # noqa: E402
from benchmarks.fault_table import Marks, measure, report, summary_table  # noqa: E402


def numbers(pattern: str, text: str) -> list[int]:
    match = re.search(pattern, text)
    if match is None:
        raise AssertionError(f"{pattern!r} not in the report:\n{text}")
    return [int(group) for group in match.groups()]


class MeasureTests(unittest.TestCase):
    """The counting, on records made up for it: a fault at t=10."""

    def test_costs_full_service_waits_and_bounds(self):
        load = Load(port=0)
        self.addCleanup(load.loop.close)
        load.started, load.ended = 0.0, 80.0
        load.requests = [
            Request(0, "/run/", 0.0, 200, 0.1),
            Request(1, "/run/", 9.5, 504, 69.5),  # in flight at the fault: waits 59.5 s
            Request(2, "/run/", 10.5, 503, 11.0),
            Request(3, "/run/", 11.2, 200, 11.3),
            Request(4, "/run/", 12.0, 200, 12.1),
            Request(5, "/run/", 9.8),  # never answered
        ]
        load.sockets = [Socket(0, 0.0), Socket(1, 0.0, closed=10.4, code=1011)]
        load.messages = {(m.socket, m.seq): m for m in [
            Message(0, 0, 1.0, [1.01]),
            Message(0, 1, 10.2),  # lost on a socket left open
            Message(1, 0, 10.1),  # lost, its socket closed 0.3 s later
            Message(0, 2, 11.5, [11.51, 11.52]),  # echoed twice
            Message(0, 3, 12.2, [12.21]),
        ]}
        load.handshakes = [Handshake(0.0, 101), Handshake(10.6, 503), Handshake(12.3, 101)]
        load.misdelivered = ["1:7"]
        runs = collections.Counter({2: 1, 3: 2, 4: 1})
        logs = [(10.1, "server", "ERROR channels.x shard 127.0.0.1:6379 down 3 s"),
                (10.2, "server", "ERROR channels.x shard 127.0.0.1:6379 down 4 s"),
                (10.3, "worker", "Traceback (most recent call last):"),
                (10.3, "worker", "  File ..."),
                (99.0, "worker", "after the run")]
        outcome = measure("f", "a fault", load, runs, Marks(fault_at=10.0, repair_at=11.0),
                          logs, wait_bound=2)

        self.assertEqual((outcome.sent, outcome.unanswered), (6, 1))
        self.assertEqual(outcome.statuses, {200: 3, 503: 1, 504: 1})
        self.assertEqual((outcome.ran_twice, outcome.ran_unseen), (1, 1))
        self.assertEqual((outcome.ws_sent, outcome.echoed, outcome.lost, outcome.lost_silently,
                          outcome.duplicated), (5, 3, 2, 1, 1))
        self.assertEqual(outcome.closes, {1011: 1})
        self.assertEqual(outcome.misdelivered, 1)
        self.assertEqual(outcome.refused, {503: 1})
        # The last thing to go wrong: the message echoed twice, sent at
        # 11.5; the next to go well: request 4, sent at 12.0.
        self.assertAlmostEqual(outcome.full_service, 2.0)
        # Request 5 waits from the fault until the run ends.
        self.assertAlmostEqual(outcome.http_wait, 80.0 - 10.0)
        self.assertAlmostEqual(outcome.ws_wait, 0.3)
        self.assertEqual([ok for _, ok in outcome.checks], [False, False, False])
        self.assertEqual(outcome.logs, ["    2x server: ERROR channels.x shard HOST:PORT down N s",
                                        "    1x worker: Traceback (most recent call last):"])
        text = report(outcome)
        self.assertIn("full service after  2.0 s (1.0 s after the repair)", text)
        self.assertIn("and 1 message(s) never answered", text)
        self.assertIn("[FAILED] nothing unanswered past 2 s", text)
        # fault, HTTP sent, by status, unanswered, run twice, WS sent,
        # echoed, lost, duplicated, closed, full service, bounds.
        self.assertRegex(summary_table([outcome]), r"\nf +6 +200: 3, 503: 1, 504: 1 +1 +1 +5 +3 "
                                                   r"+2 +1 +1011: 1 +2\.0 +FAILED\n")

    def test_nothing_failed_is_full_service_at_once(self):
        load = Load(port=0)
        self.addCleanup(load.loop.close)
        load.started, load.ended = 0.0, 20.0
        load.requests = [Request(0, "/run/", 9.0, 200, 9.1), Request(1, "/run/", 11, 200, 11.1)]
        outcome = measure("f", "a fault", load, collections.Counter({0: 1, 1: 1}),
                          Marks(fault_at=10.0), [], wait_bound=None)
        self.assertEqual(outcome.full_service, 0.0)
        self.assertTrue(outcome.holds)
        # Failing to the end: full service is not in the run.
        load.requests.append(Request(2, "/run/", 12, 503, 12.1))
        outcome = measure("f", "a fault", load, collections.Counter(), Marks(fault_at=10.0),
                          [], wait_bound=None)
        self.assertIsNone(outcome.full_service)
        self.assertIn("full service after  not in the run", report(outcome))


class FaultReportTests(unittest.TestCase):
    def test_quick_shard_fault_prints_a_consistent_table(self):
        env = dict(os.environ)
        env.pop("DJANGO_SETTINGS_MODULE", None)
        result = subprocess.run(
            [sys.executable, SCRIPT, "faults", "--only", "shard", "--quick"], env=env,
            capture_output=True, text=True, timeout=240)
        output = result.stdout
        self.assertEqual(result.returncode, 0, output + result.stderr)
        self.assertIn("command: python testproject/benchmark.py faults --only shard --quick",
                      output)
        killed, inbox = numbers(r"killed shard (\d+); the server's inbox is on shard (\d+)",
                                output)
        self.assertNotEqual(killed, inbox)

        sent, = numbers(r"HTTP requests +sent (\d+);", output)
        statuses = re.search(r"answered by status: ([^;]*); unanswered: (\d+)", output)
        answered = sum(int(count) for count in re.findall(r": (\d+)", statuses.group(1)))
        self.assertGreater(sent, 0)
        self.assertEqual(answered + int(statuses.group(2)), sent)
        ws_sent, echoed, lost, _, duplicated = numbers(
            r"WebSocket messages +sent (\d+); echoed (\d+); lost (\d+) \((\d+) on a socket "
            r"left open\); duplicated (\d+)", output)
        self.assertGreater(ws_sent, 0)
        self.assertEqual(echoed + lost, ws_sent)
        self.assertEqual(duplicated, 0)
        self.assertRegex(output, r"full service after +\d+\.\d s")
        self.assertIn("[ok] nothing duplicated", output)
        # The outage happened, and the processes said so.
        self.assertRegex(output, r"\d+x (server|worker): [A-Z]+ .*unreachable")
        self.assertRegex(output, r"\d+x (server|worker): .* is reachable again")
        # The closing table, one row for the fault.
        self.assertRegex(output, rf"\nshard +{sent} +200: [^\n]* 0 +{ws_sent} +{echoed} ")
        self.assertIn("bounds hold for every fault", output)


if __name__ == "__main__":
    unittest.main()
