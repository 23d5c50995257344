#!/usr/bin/env python
"""Runs the test suite with Django's test runner.

    python runtests.py                  # everything: channels, then testproject
    python runtests.py tests.test_names    # any test label
    python runtests.py demo.tests.test_consumers    # a label of testproject
    python runtests.py -v --failfast ...

The demo project in testproject/ has its own settings, so its tests (labels
starting with one of its apps, e.g. ``demo``) run in a second process, and
one summary line at the end counts both.
"""

import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.join(HERE, "testproject")
# Test labels that belong to testproject rather than to channels.
PROJECT_APPS = ("demo", "testproject")
# Set in the second process: where it writes its counts.
RESULT_FILE_ENV = "CHANNELS_RUNTESTS_RESULT"
COUNTS = ("passed", "failed", "skipped")


def run_suite(labels, settings_module, argv):
    """Run ``labels`` in this process under ``settings_module``; return the
    counts of passed, failed (with errors) and skipped tests."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.conf import settings
    from django.test.utils import get_runner

    django.setup()
    counts = dict.fromkeys(COUNTS, 0)

    class CountingRunner(get_runner(settings)):
        def suite_result(self, suite, result, **kwargs):
            failed = len(result.failures) + len(result.errors) + len(
                result.unexpectedSuccesses)
            skipped = len(result.skipped) + len(result.expectedFailures)
            counts.update(failed=failed, skipped=skipped,
                          passed=max(result.testsRun - failed - skipped, 0))
            return super().suite_result(suite, result, **kwargs)

    runner = CountingRunner(verbosity=2 if "-v" in argv else 1,
                            failfast="--failfast" in argv)
    if runner.run_tests(labels) and not counts["failed"]:
        counts["failed"] = 1  # failed before any test ran (setup, import)
    return counts


def run_project_suite(labels, argv):
    """Run testproject's tests in a child process (its own settings and
    sys.path) and return their counts."""
    with tempfile.TemporaryDirectory() as tmp:
        result_file = os.path.join(tmp, "counts.json")
        env = {**os.environ, RESULT_FILE_ENV: result_file,
               "DJANGO_SETTINGS_MODULE": "testproject.settings"}
        flags = [a for a in argv if a.startswith("-")]
        code = subprocess.call([sys.executable, __file__, *flags, *labels], env=env)
        try:
            with open(result_file) as f:
                return json.load(f)
        except (OSError, ValueError):
            print(f"testproject's tests ended without results (exit {code})")
            return {"passed": 0, "failed": 1, "skipped": 0}


def main(argv):
    labels = [a for a in argv if not a.startswith("-")]
    result_file = os.environ.get(RESULT_FILE_ENV)
    if result_file:  # the child process of run_project_suite
        sys.path[:0] = [PROJECT, HERE]
        os.chdir(PROJECT)
        counts = run_suite(labels, "testproject.settings", argv)
        with open(result_file, "w") as f:
            json.dump(counts, f)
        return 0

    sys.path.insert(0, HERE)
    project = [a for a in labels if a.split(".")[0] in PROJECT_APPS]
    own = [a for a in labels if a not in project]
    results = []
    if own or not labels:
        results.append(run_suite(own or ["tests"], "tests.settings", argv))
    if project or not labels:
        results.append(run_project_suite(project or list(PROJECT_APPS), argv))
    total = {key: sum(r[key] for r in results) for key in COUNTS}
    print(f"Total: {total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped")
    return 1 if total["failed"] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
