"""The JavaScript client's unit tests (tests/js/, the backoff schedule, the
queue, the reconnect rules and the streams), run under Node's test runner
so that the suite runs them too. The browser tests are
tests/test_client_browser.py."""

import os
import re
import shutil
import subprocess
import unittest
from pathlib import Path

from channels.messages.streams import MAX_STREAM_NAME
from tests.support.server_process import ROOT

CLIENT = Path(ROOT) / "channels" / "static" / "channels" / "client.js"

NODE = shutil.which("node")
# node --test with the describe/it API and node:test's reporter.
MIN_NODE = 18


def node_major() -> int:
    version = subprocess.run([NODE, "--version"], capture_output=True, text=True,
                             timeout=30).stdout
    return int(version.lstrip("v").split(".")[0])


NODE_HINT = "the JavaScript client's unit tests need Node.js 18 or later (apt-get install nodejs)"


def node_required() -> bool:
    """CHANNELS_REQUIRE_NODE=1 (as in CI) makes a missing node a failure."""
    return os.environ.get("CHANNELS_REQUIRE_NODE") == "1"


class ClientUnitTests(unittest.TestCase):
    def test_node_test_runner_passes(self):
        if NODE is None or node_major() < MIN_NODE:
            if node_required():
                self.fail(f"CHANNELS_REQUIRE_NODE=1 but {NODE_HINT}")
            self.skipTest(NODE_HINT)
        result = subprocess.run([NODE, "--test", os.path.join("tests", "js")], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        # Not vacuous: the tests were found and ran.
        self.assertRegex(result.stdout, r"# pass [1-9]")
        self.assertIn("# fail 0", result.stdout)


class ClientServerAgreementTests(unittest.TestCase):
    def test_both_sides_take_the_same_stream_names(self):
        found = re.search(r"^export const MAX_STREAM_NAME = (\d+);$", CLIENT.read_text(), re.M)
        self.assertIsNotNone(found, "client.js no longer says MAX_STREAM_NAME")
        self.assertEqual(int(found.group(1)), MAX_STREAM_NAME)
