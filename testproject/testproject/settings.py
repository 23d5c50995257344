"""Settings of the demo project: the getting-started guide's chat
(chat/ is docs/guide/chat) plus the demo's users, and the endpoints the
benchmarks measure.

Development (the default): the in-memory channel backend, everything in one
``runserver`` process. Production-like: ``CHANNELS_REDIS_HOSTS`` (Redis
URLs separated by spaces, one per shard) with ``runwsserver`` and
``runworker`` processes, as in the guide; ``make demo-cluster`` runs that.
"""

import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "demo-only-insecure-secret-key")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1 localhost").split()

INSTALLED_APPS = [
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "testproject.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The admin with a link to the channels status page.
        "DIRS": [BASE_DIR / "testproject" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

# The database the /db/ view waits on (testproject/benchmarks/workers.py
# sets these when a PostgreSQL runs here).
if os.environ.get("DJANGO_POSTGRES_NAME"):
    DATABASES["postgres"] = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ["DJANGO_POSTGRES_NAME"],
        "HOST": os.environ.get("DJANGO_POSTGRES_HOST", "127.0.0.1"),
        "PORT": os.environ.get("DJANGO_POSTGRES_PORT", "5432"),
        "USER": os.environ.get("DJANGO_POSTGRES_USER", "postgres"),
        # Kept per thread, as a threaded WSGI server keeps them.
        "CONN_MAX_AGE": 60,
    }

USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"  # manage.py collectstatic

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "rooms"
LOGOUT_REDIRECT_URL = "login"

# As in the guide: the chat's keepalives renew channel sessions and presence.
CHANNELS_SERVER = {"WEBSOCKET_KEEPALIVE": True}

if os.environ.get("CHANNELS_REDIS_HOSTS"):
    CHANNEL_BACKENDS = {
        "default": {
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "ROUTING": "testproject.routing.channel_routing",
            "HOSTS": os.environ["CHANNELS_REDIS_HOSTS"].split(),
        }
    }
else:
    CHANNEL_BACKENDS = {
        "default": {
            "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
            "ROUTING": "testproject.routing.channel_routing",
        }
    }
