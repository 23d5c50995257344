"""The code follows the project's ruff configuration (pyproject.toml), so a
style slip fails the suite where it is run, not only in review."""

import importlib.util
import os
import subprocess
import sys
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@unittest.skipUnless(
    importlib.util.find_spec("ruff"),
    "ruff is not installed; install the tests extra: pip install -e '.[tests]'",
)
class RuffTests(unittest.TestCase):
    def test_ruff_check_is_clean(self):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", "check", "--no-cache", ROOT],
            cwd=ROOT, capture_output=True, text=True, timeout=300,
        )
        if result.returncode != 0:
            self.fail(f"ruff check failed (exit {result.returncode}):\n"
                      f"{result.stdout}{result.stderr}")
