"""Settings of the runwsserver and runworker processes of
tests/test_client_browser.py's streams test: the interface test settings
(the backend from CHANNELS_TEST_BACKEND), with static files, so that the
server serves channels/client.js, and channel sessions in the one worker
process's memory."""

from tests.interface_redis_settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "django.contrib.staticfiles"]  # noqa: F405
STATIC_URL = "static/"
DEBUG = True  # static files from the apps' static/ directories
SESSION_ENGINE = "django.contrib.sessions.backends.cache"
