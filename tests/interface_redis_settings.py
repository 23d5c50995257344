"""Settings of runwsserver subprocesses in tests: the test settings with the
channel backend the test passes as JSON in CHANNELS_TEST_BACKEND."""

import json
import os

from tests.settings import *  # noqa: F403

CHANNEL_BACKENDS = {"default": json.loads(os.environ["CHANNELS_TEST_BACKEND"])}
