"""Real server processes for tests and benchmarks: gunicorn and runworker
subprocesses of this checkout, started on free ports and stopped cleanly."""

from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def django_env(settings_module: str, *paths: str, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that runs this checkout's Django."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([ROOT, *paths, env.get("PYTHONPATH", "")])
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["PYTHONUNBUFFERED"] = "1"  # lines such as "listening on" arrive at once
    env.update(extra)
    return env


class Process:
    """A subprocess whose output is collected (so its pipe never fills) and
    searched for a line, such as the one that names its port."""

    def __init__(self, args: list[str], env: dict[str, str],
                 on_line: Callable[[str], None] | None = None):
        """``on_line`` is called with each line of output as it comes
        (``lines`` keeps only the last 500)."""
        self.args = args
        self.on_line = on_line
        self.popen = subprocess.Popen(args, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT, cwd=ROOT)
        self.lines: collections.deque[str] = collections.deque(maxlen=500)
        self._new_line = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for raw in self.popen.stdout:
            line = raw.decode(errors="replace").rstrip()
            if self.on_line is not None:
                self.on_line(line)
            with self._new_line:
                self.lines.append(line)
                self._new_line.notify_all()

    def wait_for_line(self, pattern: str, timeout: float = 20) -> re.Match:
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._new_line:
            while True:
                for line in self.lines:
                    match = regex.search(line)
                    if match:
                        return match
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self.popen.poll() is not None:
                    raise RuntimeError(
                        f"{self.args[:4]} printed no {pattern!r}; output:\n" + self.output())
                self._new_line.wait(min(remaining, 0.2))

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        return self.popen.returncode


def start_gunicorn(app: str, env: dict[str, str], *options: str) -> tuple[Process, int]:
    """gunicorn serving ``app`` on a free loopback port; returns it and the port."""
    process = Process([sys.executable, "-m", "gunicorn", "--bind", "127.0.0.1:0",
                       *options, app], env)
    port = int(process.wait_for_line(r"Listening at: http://127\.0\.0\.1:(\d+)").group(1))
    return process, port


def start_worker(env: dict[str, str], *options: str) -> Process:
    process = Process([sys.executable, "-m", "django", "runworker", *options], env)
    process.wait_for_line(r"listening on")
    return process
