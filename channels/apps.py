from django.apps import AppConfig
from django.utils.module_loading import autodiscover_modules


class ChannelsConfig(AppConfig):
    name = "channels"
    verbose_name = "Channels"

    def ready(self):
        from channels import checks  # noqa: F401  (registers system checks)

        # Import each app's consumers.py so its @consumer decorators register.
        autodiscover_modules("consumers")
