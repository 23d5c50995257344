INSTALLED_APPS = [
    # Above django.contrib.staticfiles, so that channels'
    # runserver is the one that runs (channels.W001 says
    # so otherwise).
    "channels",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "chat",
]
