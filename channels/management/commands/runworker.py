from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from channels.backends import DEFAULT_CHANNEL_BACKEND, channel_backends
from channels.metrics import address_problem
from channels.worker import metrics, service
from channels.worker.loop import filter_channels
from channels.worker.service import SHUTDOWN_TIMEOUT, WorkerOptions
from channels.worker.supervisor import Supervisor
from channels.worker.take_ahead import PREFETCH


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
                            help="The most waiting messages one receive may take with one "
                                 "thread, fewer when consumers run long (default: "
                                 "%(default)s; 1: one by one).")
        parser.add_argument("--threads", type=int, default=1, metavar="N",
                            help="Consumer threads per process, for consumers that wait on "
                                 "I/O (default: %(default)s).")
        parser.add_argument("--processes", type=int, default=None, metavar="M",
                            help="Run M worker processes under a supervisor that restarts "
                                 "them (default: this process is the worker).")
        parser.add_argument("--max-messages", type=int, default=0, metavar="K",
                            help="Replace a worker process after K messages (default: 0, "
                                 "never); implies --processes 1 if not given.")
        parser.add_argument("--max-messages-jitter", type=int, default=0, metavar="J",
                            help="Add a random 0 to J to each process's --max-messages "
                                 "(default: %(default)s).")
        parser.add_argument("--shutdown-timeout", type=float, default=SHUTDOWN_TIMEOUT,
                            metavar="SECONDS",
                            help="How long consumers may finish after SIGTERM "
                                 "(default: %(default)g).")
        parser.add_argument("--metrics", metavar="HOST:PORT",
                            help="Serve Prometheus metrics at /metrics on this address "
                                 "(default: the CHANNELS_WORKER_METRICS setting; none); "
                                 "with --processes, process N on PORT + N - 1.")

    def handle(self, *args, alias, only_channels, exclude_channels, prefetch, threads,
               processes, max_messages, max_messages_jitter, shutdown_timeout, verbosity,
               **options):
        for name, value, least in (("--prefetch", prefetch, 1), ("--threads", threads, 1),
                                   ("--processes", processes, 1),
                                   ("--max-messages", max_messages, 0),
                                   ("--max-messages-jitter", max_messages_jitter, 0)):
            if value is not None and value < least:
                raise CommandError(f"{name} must be at least {least}, not {value}.")
        if not shutdown_timeout > 0:
            raise CommandError(f"--shutdown-timeout must be more than 0, not {shutdown_timeout}.")
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
        worker_options = WorkerOptions(
            alias=alias, channels=channels, threads=threads, prefetch=prefetch,
            max_messages=max_messages, max_messages_jitter=max_messages_jitter,
            shutdown_timeout=shutdown_timeout, verbose=verbosity > 1,
            metrics_address=metrics_address)
        if processes is None and max_messages:
            processes = 1  # a process that reaches its limit is replaced
        if processes is not None:
            Supervisor(worker_options, processes, out=self.stdout.write).run()
            self.stdout.write("Workers stopped.")
            return
        worker = service.make_worker(backend, worker_options, self.stdout.write)
        worker.install_signal_handlers()
        if metrics_address:
            try:
                service.serve_metrics(backend, channels, metrics_address, self.stdout.write)
            except OSError as exc:
                raise CommandError(f"Cannot serve metrics on {metrics_address}: {exc}")
        self.stdout.write(
            f"Running worker ({threads} thread(s)) on backend {alias!r} "
            f"({type(backend).__name__}), listening on: {', '.join(channels)}"
        )
        service.run(worker, shutdown_timeout)
        self.stdout.write("Worker stopped.")

