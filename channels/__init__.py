"""Event-driven Django: channels, groups, consumers and workers."""

__version__ = "0.1.0"

__all__ = ["Channel", "Group", "channel_backends", "DEFAULT_CHANNEL_BACKEND"]


def __getattr__(name):
    # Lazy, so that "import channels" (e.g. from setup.py or INSTALLED_APPS
    # loading) does not import Django settings-dependent modules.
    if name in ("Channel", "Group"):
        from channels import channel

        return getattr(channel, name)
    if name in ("channel_backends", "DEFAULT_CHANNEL_BACKEND"):
        from channels import backends

        return getattr(backends, name)
    raise AttributeError(f"module 'channels' has no attribute {name!r}")
