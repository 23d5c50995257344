"""docs/getting-started.rst shows only code this project runs: its Python,
HTML and JavaScript are included from testproject's files (Sphinx fails the
docs build if an included file or marker goes missing), and only shell
commands are written out."""

import re
import unittest
from pathlib import Path

DOCS = Path(__file__).resolve().parents[3] / "docs"


class GettingStartedTests(unittest.TestCase):
    def test_code_comes_from_the_tested_files(self):
        text = (DOCS / "getting-started.rst").read_text()
        blocks = re.findall(r"^\.\. code-block:: *(\S*)", text, re.M)
        self.assertEqual(set(blocks), {"console"})
        included = re.findall(r"^\.\. literalinclude:: *(\S+)", text, re.M)
        self.assertGreater(len(included), 10)
        for path in included:
            self.assertTrue(path.startswith("../testproject/"), path)
            self.assertTrue((DOCS / path).is_file(), path)
