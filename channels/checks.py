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


@checks.register()
def check_runserver_command(app_configs=None, **kwargs):
    """Django runs the ``runserver`` of the first installed app that has one
    (django.contrib.staticfiles has one too); with another app's, WebSockets
    and consumers silently never run."""
    from django.core.management import get_commands

    owner = get_commands().get("runserver")
    if owner in (None, "channels"):
        return []
    return [checks.Warning(
        f"manage.py runserver runs the command from {owner!r}, which comes before "
        f"'channels' in INSTALLED_APPS, so it serves no WebSockets and runs no consumers.",
        hint=f"Move 'channels' above {owner!r} in INSTALLED_APPS.",
        id="channels.W001",
    )]


@checks.register()
def check_http_settings(app_configs=None, **kwargs):
    """The settings of the HTTP side (channels.worker.handler, channels.worker.views, the
    WSGI adapter)."""
    from django.conf import settings

    from channels.worker.sending import HTTP_TIMEOUT_SETTINGS

    errors = []
    for name in HTTP_TIMEOUT_SETTINGS:
        value = getattr(settings, name, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)
                                  or value <= 0):
            errors.append(checks.Error(
                f"{name} must be a positive number of seconds, not {value!r}",
                id="channels.E002"))
    alias = getattr(settings, "CHANNELS_WSGI_BACKEND", None)
    if alias is not None:
        try:
            configured = backend_settings()
        except ImproperlyConfigured:
            configured = {}  # reported by check_channel_backends
        if alias not in configured:
            errors.append(checks.Error(
                f"CHANNELS_WSGI_BACKEND is {alias!r}, which is not an alias in "
                f"CHANNEL_BACKENDS ({', '.join(sorted(configured)) or 'none'})",
                id="channels.E003"))
    return errors


@checks.register()
def check_server_settings(app_configs=None, **kwargs):
    """``CHANNELS_SERVER`` and ``CHANNELS_ALLOWED_ORIGINS``, which only the
    interface server reads (runwsserver, runserver, the WSGI adapter): a
    mistake fails at ``manage.py check`` and on every deploy's checks, each
    one with a hint, not just when a server starts."""
    from channels.interfaces.config import setting_problems

    return [checks.Error(problem.message, hint=problem.hint, id="channels.E004")
            for problem in setting_problems()]


@checks.register()
def check_origin_settings(app_configs=None, **kwargs):
    """The allowed origins can be set in two places; with both set, one is
    silently ignored, and which one is easy to get wrong."""
    from channels.interfaces.config import ignored_settings

    if not ignored_settings():
        return []
    return [checks.Warning(
        "CHANNELS_ALLOWED_ORIGINS and CHANNELS_SERVER['ALLOWED_ORIGINS'] are both set; "
        "CHANNELS_SERVER['ALLOWED_ORIGINS'] is ignored.",
        hint="Keep one of them.",
        id="channels.W002",
    )]


@checks.register()
def check_origins_with_any_host(app_configs=None, **kwargs):
    """With ``"*"`` in ALLOWED_HOSTS any name resolving to the server is a
    host of the site, so a handshake's own origin proves nothing: a page
    of a domain pointed at this server (DNS rebinding) may open sockets."""
    from django.conf import settings

    from channels.interfaces.config import ServerConfig

    if "*" not in settings.ALLOWED_HOSTS:
        return []
    try:
        origins = ServerConfig.from_settings().allowed_origins
    except ImproperlyConfigured:
        return []  # reported by check_server_settings
    if origins is not None:
        return []
    return [checks.Warning(
        "ALLOWED_HOSTS contains '*' and no WebSocket origins are set, so a page on any "
        "domain that resolves to this server may open WebSockets to it.",
        hint="Set CHANNELS_SERVER['ALLOWED_ORIGINS'] to the site's origins, such as "
             "['https://example.com'].",
        id="channels.W003",
    )]


@checks.register()
def check_metrics_settings(app_configs=None, **kwargs):
    """CHANNELS_WORKER_METRICS, where runworker serves its metrics (the
    interface server's, CHANNELS_SERVER['METRICS'], is checked with the
    other server options)."""
    from channels.metrics import address_problem
    from channels.worker.metrics import SETTING, configured_address

    value = configured_address()
    if value is None or address_problem(value) is None:
        return []
    return [checks.Error(
        f"{SETTING} must be an address to serve metrics on: {address_problem(value)}",
        hint="Give 'HOST:PORT' or a port, such as '127.0.0.1:9102'; None serves none.",
        id="channels.E006")]


@checks.register()
def check_session_settings(app_configs=None, **kwargs):
    """CHANNELS_SESSION_AGE: how long a channel session (and the login it
    may carry) outlives its connection's last message."""
    from django.conf import settings

    value = getattr(settings, "CHANNELS_SESSION_AGE", None)
    if value is None or (not isinstance(value, bool) and isinstance(value, int | float)
                         and value > 0):
        return []
    return [checks.Error(
        f"CHANNELS_SESSION_AGE must be a positive number of seconds, not {value!r}",
        hint="The default is 300: longer than a keepalive interval, short enough that "
             "a connection's login does not outlive it for long.",
        id="channels.E005")]


@checks.register()
def check_keepalive_routed(app_configs=None, **kwargs):
    """Group memberships no longer need keepalives, so the interface server
    sends none unless asked (WEBSOCKET_KEEPALIVE); a routed keepalive
    consumer would then never run, and what it renews (a channel session,
    a presence) would lapse on quiet sockets without a word."""
    from channels.interfaces.config import ServerConfig

    try:
        if ServerConfig.from_settings().websocket_keepalive:
            return []
        configured = backend_settings()
    except ImproperlyConfigured:
        return []  # reported by the checks above
    warnings = []
    for alias, config in configured.items():
        try:
            backend = create_backend(alias, config)
            try:
                routed = "websocket.keepalive" in backend.registry.all_channel_names()
            finally:
                backend.close()
        except ImproperlyConfigured:
            continue
        if routed:
            warnings.append(checks.Warning(
                f"websocket.keepalive has a consumer on channel backend {alias!r}, but "
                f"interface servers send no keepalives: it will never run.",
                hint="Set CHANNELS_SERVER['WEBSOCKET_KEEPALIVE'] = True if it renews "
                     "something (a channel session, a presence), or remove the route.",
                id="channels.W004"))
    return warnings
