import re
import signal
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends

ADDRPORT = re.compile(r"^(?:(?P<addr>\[[0-9a-fA-F:]+\]|[^:\[\]]+):)?(?P<port>\d+)$")


class Command(BaseCommand):
    help = ("Runs the interface server: HTTP and WebSocket on one port, turned into "
            "messages on the channel layer for runworker processes.")

    def add_arguments(self, parser):
        parser.add_argument("addrport", nargs="?",
                            help="[address:]port to listen on (default 127.0.0.1:8000).")
        parser.add_argument("--bind", "-b", help="Address to listen on.")
        parser.add_argument("--port", "-p", type=int, help="Port to listen on (0: any free).")
        parser.add_argument("--unix-socket", "-u", metavar="PATH",
                            help="Listen on a Unix socket instead of TCP.")
        parser.add_argument("--alias", default=DEFAULT_CHANNEL_BACKEND,
                            help="Channel backend alias (default: %(default)s).")
        parser.add_argument("--proxy-headers", action="store_true", default=None,
                            help="Trust X-Forwarded-For/-Proto (only behind a proxy).")
        parser.add_argument("--access-log", metavar="FILE", default="-",
                            help="Where the access log goes, one line in the common log "
                                 "format per answer (default: '-', stdout).")
        parser.add_argument("--no-access-log", action="store_const", const=None,
                            dest="access_log", help="Write no access log.")
        parser.add_argument("--no-static", action="store_false", dest="static",
                            help="Do not serve STATIC_URL (from the staticfiles finders when "
                                 "DEBUG, else from STATIC_ROOT); hand it to the workers.")
        parser.add_argument("--http-timeout", type=float,
                            help="Seconds to wait for a worker's response before 504.")
        parser.add_argument("--connect-timeout", type=float,
                            help="Seconds to wait for a websocket.connect decision before 503.")
        parser.add_argument("--keepalive-timeout", type=float,
                            help="Seconds an idle keep-alive HTTP connection stays open.")
        parser.add_argument("--shutdown-timeout", type=float,
                            help="Seconds that requests in progress get to finish once the "
                                 "server is stopped, before 503 (default 30).")
        parser.add_argument("--ping-interval", type=float,
                            help="Seconds a WebSocket may be silent before it is pinged "
                                 "(default 45; 0: no pings).")
        parser.add_argument("--ping-timeout", type=float,
                            help="Seconds without a word after a ping before a WebSocket is "
                                 "dropped (default 30; 0: never).")
        parser.add_argument("--websocket-keepalive", action="store_const", const=True,
                            help="Send websocket.keepalive for each open socket every half "
                                 "EXPIRY, if routed (CHANNELS_SERVER['WEBSOCKET_KEEPALIVE']).")
        parser.add_argument("--max-connections", type=int,
                            help="Open connections above which new ones get 503.")
        parser.add_argument("--max-body-size", type=int, help="Request body limit in bytes (413).")
        parser.add_argument("--max-message-size", type=int,
                            help="WebSocket message limit in bytes (close 1009).")
        parser.add_argument("--metrics", metavar="HOST:PORT",
                            help="Serve Prometheus metrics at /metrics on this address, "
                                 "apart from the public port (CHANNELS_SERVER['METRICS']).")

    def handle(self, *args, addrport, bind, port, unix_socket, alias, access_log, static,
               **options):
        from twisted.internet import reactor

        from channels.interfaces import metrics
        from channels.interfaces.config import ServerConfig
        from channels.interfaces.server import ChannelServer
        from channels.interfaces.static_files import StaticFiles

        host, port = self.address(addrport, bind, port)
        try:
            backend = channel_backends[alias]
            backend.registry  # noqa: B018  (a routing error fails here, not later)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        if backend.local_only:
            raise CommandError(
                f"Channel backend {alias!r} ({type(backend).__name__}) only works inside "
                "one process, so runworker processes could not answer this server. "
                "Configure a networked backend such as "
                "channels.backends.redis.RedisChannelBackend, or use runserver.")
        log_stream = None
        if access_log == "-":
            log_stream = self.stdout
        elif access_log:
            log_stream = open(access_log, "a", buffering=1)  # noqa: SIM115 (open while serving)
        overrides = {name: options[name] for name in (
            "proxy_headers", "http_timeout", "connect_timeout", "keepalive_timeout",
            "shutdown_timeout", "ping_interval", "ping_timeout", "max_connections",
            "max_body_size", "max_message_size", "metrics", "websocket_keepalive")}
        try:
            config = ServerConfig.from_settings(access_log=log_stream, **overrides)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        static_files, static_status = (StaticFiles.from_settings() if static else
                                       (None, "Static files: none served (--no-static)."))
        server = ChannelServer(backend, reactor, config, static_files)
        try:
            if unix_socket:
                server.listen_unix(unix_socket)
                where = f"unix:{unix_socket}"
            else:
                listening = server.listen_tcp(port, host)
                shown = f"[{host}]" if ":" in host else host
                where = f"http://{shown}:{listening.getHost().port}/"
            metrics_port = metrics.start(server)
        except Exception as exc:
            raise CommandError(f"Cannot listen: {exc}")

        def stop():
            # Twisted's handlers would try to stop the stopping reactor again.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: reactor.callFromThread(hurry))
            busy = server.requests_in_progress()
            if busy:
                self.stdout.write(
                    f"Stopping: {busy} request(s) in progress get up to "
                    f"{config.shutdown_timeout:g} s to finish (signal again to answer "
                    f"them 503 now).")
                sys.stdout.flush()
            return server.shutdown()

        def hurry():
            if server.cut_short():
                self.stdout.write("Stopping now: requests still running get 503.")
                sys.stdout.flush()

        # Twisted stops the reactor on SIGTERM/SIGINT and waits for this
        # Deferred first: stop accepting, close WebSockets with 1001, let
        # requests in progress finish, send the disconnect messages.
        reactor.addSystemEventTrigger("before", "shutdown", stop)
        self.stdout.write(
            f"Interface server listening on {where} (HTTP and WebSocket), backend "
            f"{alias!r} ({type(backend).__name__}). Stop with SIGTERM or CONTROL-C.")
        self.stdout.write(static_status)
        if metrics_port is not None:
            self.stdout.write(f"Metrics at {metrics.url(metrics_port)}")
        sys.stdout.flush()
        reactor.run()
        # Exiting cleanly: a late signal must not turn that into a kill.
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, signal.SIG_IGN)
        self.stdout.write("Interface server stopped.")

    @staticmethod
    def address(addrport, bind, port):
        host, number = "127.0.0.1", 8000
        if addrport:
            match = ADDRPORT.match(addrport)
            if match is None:
                raise CommandError(f"{addrport!r} is not a port or address:port.")
            host = (match["addr"] or host).strip("[]")
            number = int(match["port"])
        if bind:
            host = bind
        if port is not None:
            number = port
        if not 0 <= number <= 65535:
            raise CommandError(f"Port {number} is out of range.")
        return host, number
