"""The documentation builds with warnings as errors, as CI builds it: a
broken cross-reference, a missing page or a docstring autodoc cannot read
fails the suite, not just the docs job."""

import importlib.util
import os
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, "docs")


@unittest.skipUnless(
    importlib.util.find_spec("sphinx"),
    "Sphinx is not installed; install the tests extra: pip install -e '.[tests]'",
)
class DocsBuildTests(unittest.TestCase):
    def test_sphinx_build_has_no_warnings(self):
        with tempfile.TemporaryDirectory() as out:
            result = subprocess.run(
                [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q",
                 "-b", "html", DOCS, out],
                cwd=ROOT, capture_output=True, text=True, timeout=300,
            )
        if result.returncode != 0:
            self.fail(
                f"sphinx-build -W failed (exit {result.returncode}):\n"
                f"{result.stdout}{result.stderr}"
            )
