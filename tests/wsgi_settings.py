"""Settings of the gunicorn and runworker subprocesses of test_wsgi: the test
settings on the Redis backend that ``CHANNELS_TEST_BACKEND`` (JSON) names."""

import json
import os

from tests.settings import *  # noqa: F403

ROOT_URLCONF = "tests.http_views"
# Sessions that need no database tables shared between processes.
SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
CHANNEL_BACKENDS = {"default": json.loads(os.environ["CHANNELS_TEST_BACKEND"])}
CHANNELS_SERVER = {"HTTP_TIMEOUT": 10}
