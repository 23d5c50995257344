"""Access to the configured channel backends, in the manner of Django's
``caches``: ``channel_backends["default"]``.

Settings are read at first use and again after ``CHANNEL_BACKENDS`` changes
(``override_settings``), never at import time.
"""

from __future__ import annotations

import inspect
import threading

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.utils.module_loading import import_string

from channels.backends.base import BaseChannelBackend

DEFAULT_CHANNEL_BACKEND = "default"

DEFAULT_SETTINGS = {
    DEFAULT_CHANNEL_BACKEND: {
        "BACKEND": "channels.backends.memory.InMemoryChannelBackend",
    }
}


def backend_settings() -> dict:
    configured = getattr(settings, "CHANNEL_BACKENDS", None) or DEFAULT_SETTINGS
    if not isinstance(configured, dict):
        raise ImproperlyConfigured(
            f"CHANNEL_BACKENDS must be a dict of alias to backend settings, "
            f"not {type(configured).__name__}"
        )
    return configured


def create_backend(alias: str, config: dict) -> BaseChannelBackend:
    """Build a backend from one CHANNEL_BACKENDS entry, naming the alias and
    the value in every configuration error."""
    where = f"CHANNEL_BACKENDS[{alias!r}]"
    if not isinstance(config, dict) or "BACKEND" not in config:
        raise ImproperlyConfigured(f"{where} must be a dict with a 'BACKEND' key")
    path = config["BACKEND"]
    try:
        backend_class = import_string(path)
    except ImportError as exc:
        raise ImproperlyConfigured(
            f"{where}['BACKEND'] = {path!r} could not be imported: {exc}"
        ) from exc
    if not (isinstance(backend_class, type) and issubclass(backend_class, BaseChannelBackend)):
        raise ImproperlyConfigured(
            f"{where}['BACKEND'] = {path!r} is not a BaseChannelBackend subclass"
        )
    options = {key.lower(): value for key, value in config.items() if key != "BACKEND"}
    accepted = accepted_options(backend_class)
    unknown = sorted(key.upper() for key in options if key not in accepted)
    if unknown:
        raise ImproperlyConfigured(
            f"{where} has unknown option(s) {', '.join(unknown)} for {path}; "
            f"it accepts {', '.join(sorted(name.upper() for name in accepted))}"
        )
    return backend_class(alias=alias, **options)


def accepted_options(backend_class: type) -> set[str]:
    """The lower-case option names that ``backend_class`` takes."""
    names = set()
    for klass in backend_class.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        for param in inspect.signature(init).parameters.values():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
                names.add(param.name)
    names.discard("self")
    names.discard("alias")
    return names


class ChannelBackendManager:
    """Creates each configured backend once per process, on first use."""

    def __init__(self):
        self._backends: dict[str, BaseChannelBackend] = {}
        self._lock = threading.Lock()

    def __getitem__(self, alias: str) -> BaseChannelBackend:
        backend = self._backends.get(alias)
        if backend is not None:
            return backend
        with self._lock:
            if alias not in self._backends:
                configured = backend_settings()
                if alias not in configured:
                    raise ImproperlyConfigured(
                        f"No channel backend {alias!r} in CHANNEL_BACKENDS "
                        f"(configured: {', '.join(sorted(configured)) or 'none'})"
                    )
                self._backends[alias] = create_backend(alias, configured[alias])
            return self._backends[alias]

    def __contains__(self, alias: str) -> bool:
        return alias in backend_settings()

    def set(self, alias: str, backend: BaseChannelBackend | None) -> BaseChannelBackend | None:
        """Use ``backend`` for ``alias`` (test tools swap in fresh ones) and
        return the one it replaces. ``None`` forgets the alias's backend, so
        its next use builds one from the settings again."""
        with self._lock:
            previous = self._backends.pop(alias, None)
            if backend is not None:
                self._backends[alias] = backend
            return previous

    def reset(self) -> None:
        with self._lock:
            backends, self._backends = self._backends, {}
        for backend in backends.values():
            backend.close()


channel_backends = ChannelBackendManager()


# Settings whose change (override_settings) drops the backends built so far.
RESET_ON_SETTINGS = frozenset({"CHANNEL_BACKENDS", "ROOT_URLCONF"})


def _settings_changed(*, setting, **kwargs):
    if setting in RESET_ON_SETTINGS:
        channel_backends.reset()


setting_changed.connect(_settings_changed)
