#!/usr/bin/env python
"""Runs the test suite with Django's test runner.

    python runtests.py                      # everything
    python runtests.py channels.tests.test_memory   # one module (any test label)
"""

import os
import sys

import django
from django.conf import settings
from django.test.utils import get_runner

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv):
    sys.path.insert(0, HERE)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "channels.tests.settings")
    django.setup()
    TestRunner = get_runner(settings)
    args = [a for a in argv if not a.startswith("-")]
    verbosity = 2 if "-v" in argv else 1
    runner = TestRunner(verbosity=verbosity, failfast="--failfast" in argv)
    failures = runner.run_tests(args or ["channels.tests"])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
