"""Plain Django WSGI, to serve /hello/ directly with gunicorn as the
benchmark's baseline."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "testproject.settings")
application = get_wsgi_application()
