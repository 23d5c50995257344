from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends
from channels.metrics import address_problem, watch_shards
from channels.worker import metrics
from channels.worker.loop import PREFETCH, Worker, filter_channels


class Command(BaseCommand):
    help = "Runs a worker: takes messages from every routed channel and runs their consumers."

    def add_arguments(self, parser):
        parser.add_argument("--alias", default=DEFAULT_CHANNEL_BACKEND,
                            help="Channel backend alias (default: %(default)s).")
        parser.add_argument("--only-channels", nargs="+", default=[], metavar="PATTERN",
                            help="Only listen on channels matching these glob patterns.")
        parser.add_argument("--exclude-channels", nargs="+", default=[], metavar="PATTERN",
                            help="Do not listen on channels matching these glob patterns.")
        parser.add_argument("--prefetch", type=int, default=PREFETCH, metavar="N",
                            help="How many waiting messages one receive may take "
                                 "(default: %(default)s; 1: one by one).")
        parser.add_argument("--metrics", metavar="HOST:PORT",
                            help="Serve Prometheus metrics at /metrics on this address "
                                 "(default: the CHANNELS_WORKER_METRICS setting; none).")

    def handle(self, *args, alias, only_channels, exclude_channels, prefetch, verbosity,
               **options):
        if prefetch < 1:
            raise CommandError(f"--prefetch must be at least 1, not {prefetch}.")
        metrics_address = options.get("metrics") or metrics.configured_address()
        if metrics_address and address_problem(metrics_address):
            raise CommandError(f"Metrics address: {address_problem(metrics_address)}.")
        try:
            backend = channel_backends[alias]
            routed = backend.registry.all_channel_names()
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        if backend.local_only:
            raise CommandError(
                f"Channel backend {alias!r} ({type(backend).__name__}) only works "
                "inside one process, so a separate worker cannot share it. Configure "
                "a networked backend such as channels.backends.redis.RedisChannelBackend, "
                "or use runserver, which runs workers in its own process."
            )
        channels = filter_channels(routed, only_channels, exclude_channels)
        if not channels:
            raise CommandError("No channels left to listen on after filtering.")
        callback = self.report if verbosity > 1 else None
        worker = Worker(backend, callback=callback, channels=channels, prefetch=prefetch)
        worker.install_signal_handlers()
        if metrics_address:
            self.serve_metrics(backend, channels, metrics_address)
        self.stdout.write(
            f"Running worker on backend {alias!r} ({type(backend).__name__}), "
            f"listening on: {', '.join(channels)}"
        )
        worker.run()
        self.stdout.write("Worker stopped.")

    def serve_metrics(self, backend, channels, address):
        metrics.enable()
        watch_shards(backend)
        metrics.watch_queues(backend, channels)
        try:
            server = metrics.serve(address)
        except OSError as exc:
            raise CommandError(f"Cannot serve metrics on {address}: {exc}")
        host, port = server.server_address[:2]
        shown = f"[{host}]" if ":" in host else host
        self.stdout.write(f"Metrics at http://{shown}:{port}/metrics")

    def report(self, channel, message):
        reply = message.reply_channel.name if message.reply_channel else "-"
        self.stdout.write(f"{channel} (reply: {reply})")
