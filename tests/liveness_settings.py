"""Settings of the runwsserver and runworker processes of
test_liveness_processes: the Redis backend the test passes as JSON in
CHANNELS_TEST_BACKEND, and channels' log lines on stderr, which the test
reads."""

from tests.interface_redis_settings import *  # noqa: F403

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler"}},
    "loggers": {"channels": {"handlers": ["stderr"], "level": "INFO", "propagate": False}},
}
