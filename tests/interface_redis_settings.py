"""Settings of runwsserver subprocesses in tests: the test settings with the
channel backend the test passes as JSON in CHANNELS_TEST_BACKEND."""

import json
import os

from tests.settings import *  # noqa: F403

CHANNEL_BACKENDS = {"default": json.loads(os.environ["CHANNELS_TEST_BACKEND"])}
# Server options a test gives as JSON, if any.
CHANNELS_SERVER = json.loads(os.environ.get("CHANNELS_TEST_SERVER", "{}"))

# What the server logs reaches its output, where tests look for errors.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {"channels": {"handlers": ["console"], "level": "WARNING",
                             "propagate": False}},
}
