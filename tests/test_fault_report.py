"""The fault report (``python testproject/benchmark.py faults``) runs: its
machinery on one quick fault, a shard that holds no inbox killed -9 and
restarted, with real processes under load, so that the report cannot rot
between the runs that give docs/benchmarks.rst its figures.

What is asserted is the report's arithmetic and that the fault happened
(the processes logged the outage), not figures: those are the report's."""

import os
import re
import subprocess
import sys
import unittest

from tests.support.server_process import ROOT

SCRIPT = os.path.join(ROOT, "testproject", "benchmark.py")


def numbers(pattern: str, text: str) -> list[int]:
    match = re.search(pattern, text)
    if match is None:
        raise AssertionError(f"{pattern!r} not in the report:\n{text}")
    return [int(group) for group in match.groups()]


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
        self.assertRegex(output, rf"\nshard +{sent} +200: ")
        self.assertIn("bounds hold for every fault", output)


if __name__ == "__main__":
    unittest.main()
