import json
import time

from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from channels.backends import DEFAULT_CHANNEL_BACKEND, backend_settings
from channels.status.report import collect
from channels.status.text import render

# Clears a terminal and puts the cursor at the top left, between two reports.
CLEAR = "\033[H\033[2J"


def positive(value: str) -> float:
    seconds = float(value)
    if not seconds > 0:
        raise ValueError(value)
    return seconds


class Command(BaseCommand):
    help = ("Shows what the channel layer is doing: each shard, the messages waiting on "
            "each channel, the groups, and the running workers and interface servers.")

    def add_arguments(self, parser):
        parser.add_argument("--backend", "--alias", dest="alias",
                            default=DEFAULT_CHANNEL_BACKEND, metavar="ALIAS",
                            help="Channel backend alias (default: %(default)s).")
        parser.add_argument("--json", action="store_true", dest="as_json",
                            help="Print one JSON object (one line) instead of text.")
        parser.add_argument("--watch", type=positive, metavar="SECONDS",
                            help="Print again every SECONDS until Ctrl-C.")

    def handle(self, *args, alias, as_json, watch, **options):
        if alias not in backend_settings():
            raise CommandError(f"No channel backend {alias!r} in CHANNEL_BACKENDS "
                               f"(aliases: {', '.join(sorted(backend_settings()))}).")
        try:
            while True:
                self.show(alias, as_json, clear=watch is not None)
                if watch is None:
                    return
                time.sleep(watch)
        except KeyboardInterrupt:
            if not as_json:  # JSON lines stay JSON
                self.stdout.write("")  # the terminal's ^C on a line of its own

    def show(self, alias, as_json, clear):
        try:
            report = collect(alias)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc))
        if as_json:
            self.stdout.write(json.dumps(report))
        else:
            if clear and self.stdout.isatty():
                self.stdout.write(CLEAR, ending="")
            self.stdout.write(render(report), ending="")
        self.stdout.flush()
