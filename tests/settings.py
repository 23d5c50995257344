"""Settings for the channels test suite (see runtests.py)."""

SECRET_KEY = "channels-tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
USE_TZ = True

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "channels",
    "tests",
    "tests.testapp",
]

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]

ROOT_URLCONF = "tests.urls"

TEST_RUNNER = "tests.support.runner.ChannelsTestRunner"

DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"},
}

CHANNEL_BACKENDS = {
    "default": {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
        "ROUTING": "tests.routing.channel_routing",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    "loggers": {"channels": {"handlers": ["null"], "propagate": False}},
}

# Fast password hashing: tests log users in; PBKDF2 would cost seconds.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

# The tests' routings have a websocket.keepalive consumer for the tests that
# turn keepalives on; the others need not hear that it would never run.
SILENCED_SYSTEM_CHECKS = ["channels.W004"]
