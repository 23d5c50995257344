"""The test runner of the channels suite (TEST_RUNNER in the test settings).

It is Django's DiscoverRunner, plus two things the suite needs: the
throwaway Redis servers that tests started are stopped when the run ends,
and one summary line makes a long run's outcome easy to find.
"""

from __future__ import annotations

from django.test.runner import DiscoverRunner


class ChannelsTestRunner(DiscoverRunner):
    def teardown_test_environment(self, **kwargs):
        from tests.support.redis_servers import stop_all

        try:
            stop_all()
        finally:
            super().teardown_test_environment(**kwargs)

    def suite_result(self, suite, result, **kwargs):
        passed = (result.testsRun - len(result.failures) - len(result.errors)
                  - len(result.skipped) - len(result.expectedFailures)
                  - len(result.unexpectedSuccesses))
        print(f"{passed} passed, {len(result.failures)} failed, "
              f"{len(result.errors)} errors, {len(result.skipped)} skipped")
        return super().suite_result(suite, result, **kwargs)
