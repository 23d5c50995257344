"""Settings of the processes of test_worker_concurrency: those of
test_liveness_processes, with channel sessions in the worker process's
memory (one worker process per test that uses them; the in-memory SQLite
database would be one per thread)."""

from tests.liveness_settings import *  # noqa: F403

SESSION_ENGINE = "django.contrib.sessions.backends.cache"
