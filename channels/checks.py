"""System checks, so a misconfigured channel layer fails at startup with a
message instead of at the first message."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

from channels.backends import backend_settings, create_backend


@checks.register()
def check_channel_backends(app_configs=None, **kwargs):
    errors = []
    try:
        configured = backend_settings()
    except ImproperlyConfigured as exc:
        return [checks.Error(str(exc), id="channels.E001")]
    for alias, config in configured.items():
        try:
            backend = create_backend(alias, config)
            try:
                backend.registry  # noqa: B018  (builds it, or raises)
            finally:
                backend.close()
        except ImproperlyConfigured as exc:
            errors.append(checks.Error(str(exc), id="channels.E001"))
    return errors
