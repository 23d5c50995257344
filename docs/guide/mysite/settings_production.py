# In production: DJANGO_DEBUG=0, a secret DJANGO_SECRET_KEY,
# the site's host names in DJANGO_ALLOWED_HOSTS (separated by
# spaces), and the static files that collectstatic gathers
# into STATIC_ROOT.
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", SECRET_KEY)
ALLOWED_HOSTS = os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1 localhost").split()
STATIC_ROOT = BASE_DIR / "staticfiles"
