"""``runserver`` with channels: HTTP and WebSocket on one port, and worker
threads running the consumers, all in one process.

Everything else is Django's ``runserver``: the address argument, the
autoreloader, system and migration checks at each start, the banner, static
files when DEBUG (django.contrib.staticfiles' ``--nostatic`` and
``--insecure`` included).
"""

from __future__ import annotations

import atexit
import errno
import os
import signal
import sys
import threading
import time

from django.apps import apps
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError
from django.core.management.commands.runserver import Command as DjangoRunserver
from django.db import connections
from django.utils import autoreload
from twisted.internet.error import CannotListenError

from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends
from channels.devserver import DevServer

LISTEN_ERRORS = {
    errno.EACCES: "You don't have permission to access that port.",
    errno.EADDRINUSE: "That port is already in use.",
    errno.EADDRNOTAVAIL: "That IP address can't be assigned to.",
}


# Django's switch for its "development server" warning, which this command
# replaces with its own.
HIDE_WARNING = "DJANGO_RUNSERVER_HIDE_WARNING"
PRODUCTION_WARNING = (
    "WARNING: This is a development server. Do not use it in a production setting. "
    "In production, run manage.py runwsserver and manage.py runworker on the Redis "
    "channel backend.\nFor more information see \"Deploying\" in the channels "
    "documentation: run \"make docs\" in a clone of channels, then open "
    "docs/_build/html/deploying.html."
)


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(DjangoRunserver):
    help = ("Starts the channels development server: HTTP and WebSocket on one port, "
            "with worker threads running the consumers.")
    # Django's runserver hides --verbosity; here 2 shows each consumer run.
    suppressed_base_arguments = {"--traceback"}

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?",
                            help="Optional port number, or ipaddr:port (default 127.0.0.1:8000).")
        parser.add_argument("--ipv6", "-6", action="store_true", dest="use_ipv6",
                            help="Use an IPv6 address.")
        parser.add_argument("--noreload", action="store_false", dest="use_reloader",
                            help="Do not restart on code changes.")
        # --workers: its name before runworker had --threads and --processes.
        parser.add_argument("--worker-threads", "--workers", type=_positive, default=4,
                            dest="workers", metavar="N",
                            help="Worker threads to run consumers (default: %(default)s).")
        parser.add_argument("--noworker", action="store_false", dest="run_workers",
                            help="Run no workers: for a networked channel backend whose "
                                 "workers run elsewhere (manage.py runworker).")
        parser.add_argument("--metrics", metavar="HOST:PORT",
                            help="Serve Prometheus metrics of the server and its workers "
                                 "at /metrics on this address (CHANNELS_SERVER['METRICS']).")
        parser.add_argument("--alias", default=DEFAULT_CHANNEL_BACKEND,
                            help="Channel backend alias (default: %(default)s).")
        parser.add_argument("--nostatic", action="store_false", dest="use_static_handler",
                            help="Do not serve static files at STATIC_URL.")
        parser.add_argument("--insecure", action="store_true", dest="insecure_serving",
                            help="Serve static files even if DEBUG is False.")

    def inner_run(self, *args, **options):
        # As Django's: an error at startup waits here, in the reloaded
        # process, so that fixing the file restarts the server.
        autoreload.raise_last_exception()
        if not options["skip_checks"]:
            self.stdout.write("Performing system checks...\n\n")
            check_kwargs = BaseCommand.get_check_kwargs(self, options)
            self.check(display_num_errors=True, **check_kwargs)
        self.check_migrations()
        for connection in connections.all(initialized_only=True):
            connection.close()

        server = self.dev_server(options)
        try:
            port = server.start()
        except CannotListenError as exc:
            reason = getattr(exc.socketError, "errno", None)
            self.stderr.write(f"Error: {LISTEN_ERRORS.get(reason, exc.socketError)}")
            os._exit(1)  # sys.exit would only end this thread under the reloader
        # Under the reloader this thread is a daemon and the main thread
        # leaves on Ctrl-C or a code change: stop cleanly on the way out.
        atexit.register(self.shut_down, server, options)
        self.stdout.write(self.describe(server, options))
        self.on_bind(port)
        if threading.current_thread() is threading.main_thread():
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                sys.exit(0)  # atexit stops the server

    def dev_server(self, options) -> DevServer:
        alias = options["alias"]
        try:
            backend = channel_backends[alias]
            backend.registry  # noqa: B018  (imports the routing, or raises)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        if not options["run_workers"] and backend.local_only:
            raise CommandError(
                f"--noworker needs a channel backend that other processes can share; "
                f"{alias!r} is {type(backend).__name__}, whose messages never leave "
                f"this process. Configure a networked backend (such as Redis), or "
                f"drop --noworker.")
        static = (options["use_static_handler"] and apps.is_installed("django.contrib.staticfiles")
                  and (settings.DEBUG or options["insecure_serving"]))
        return DevServer(
            backend, self.addr, int(self.port),
            workers=options["workers"] if options["run_workers"] else 0,
            static=static,
            callback=self.report_consumer if options["verbosity"] > 1 else None,
            access_log=self.stdout if options["verbosity"] > 0 else None,
            **({"metrics": options["metrics"]} if options.get("metrics") else {}),
        )

    def on_bind(self, server_port):
        """Django's banner, with a production warning that names this
        project's servers: Django's sends production traffic to "a WSGI or
        ASGI server", which would serve none of its WebSockets."""
        before = os.environ.get(HIDE_WARNING)
        os.environ[HIDE_WARNING] = "true"
        try:
            super().on_bind(server_port)
        finally:
            if before is None:
                del os.environ[HIDE_WARNING]
            else:
                os.environ[HIDE_WARNING] = before
        if before != "true":
            self.stdout.write(self.style.WARNING(PRODUCTION_WARNING))

    def describe(self, server: DevServer, options) -> str:
        backend = server.backend
        workers = (f"{options['workers']} worker thread(s)" if options["run_workers"]
                   else "no workers (run them with manage.py runworker)")
        described = f"Channel backend {backend.alias!r} ({type(backend).__name__}), {workers}."
        if server.handle is not None and server.handle.metrics_url:
            described += f"\nMetrics at {server.handle.metrics_url}"
        return described

    def report_consumer(self, channel, message):
        consumer = message.channel_backend.registry.consumer_for_channel(channel)
        qualname = getattr(consumer, "__qualname__", type(consumer).__qualname__)
        name = f"{consumer.__module__}.{qualname}"
        reply = message.reply_channel.name if message.reply_channel else "-"
        self.stdout.write(f"{channel} -> {name} (reply: {reply})")

    def shut_down(self, server: DevServer, options) -> None:
        # At exit, in the main thread. A second Ctrl-C (a shell or `timeout`
        # may pass one on) must not cut short the closing of the sockets,
        # which takes a few seconds at most.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        server.stop()
        shutdown_message = options.get("shutdown_message", "")
        if shutdown_message:
            self.stdout.write(shutdown_message)
