"""Settings for the static files benchmark: testproject with DEBUG off,
STATIC_ROOT and one extra static directory from the environment, and, for
the setup that serves static files through a worker, WhiteNoise's
middleware in Django's handler."""

import os

from testproject.settings import *  # noqa: F403
from testproject.settings import MIDDLEWARE

DEBUG = False
STATIC_ROOT = os.environ["BENCH_STATIC_ROOT"]
STATICFILES_DIRS = [os.environ["BENCH_STATIC_DIR"]]
if os.environ.get("BENCH_STATIC_VIA") == "worker":
    MIDDLEWARE = [MIDDLEWARE[0], "whitenoise.middleware.WhiteNoiseMiddleware", *MIDDLEWARE[1:]]
