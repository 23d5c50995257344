"""A development server in a child process, on a free port, for the
runserver tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def manage(settings: str, *args: str, env: dict | None = None, cwd: str = ROOT,
           timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
    """Run a management command of ``settings``' project to completion."""
    return subprocess.run([sys.executable, "-m", "django", *args], cwd=cwd,
                          env=command_env(settings, env), capture_output=True, text=True,
                          timeout=timeout, check=check)


def command_env(settings: str, extra: dict | None = None) -> dict:
    # The checkout, and testproject/ for the demo project's own modules.
    paths = [os.path.join(ROOT, "testproject"), ROOT, os.environ.get("PYTHONPATH")]
    pythonpath = os.pathsep.join(filter(None, paths))
    return {**os.environ, "DJANGO_SETTINGS_MODULE": settings, "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1", "DJANGO_RUNSERVER_HIDE_WARNING": "true",
            **(extra or {})}


def _as_from_a_terminal() -> None:
    """In the child before it runs: its own process group, so that Ctrl-C
    reaches the reloader's child too; and Ctrl-C not ignored, as it is for
    processes started in the background by a shell (CI's, perhaps)."""
    os.setsid()
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class ServerProcess:
    """``manage.py runserver 127.0.0.1:<free port> [args]`` of ``settings``'
    project (or another long-running ``command``, whose output says
    ``ready`` once it serves; runwsserver gets the address too), on
    ``port`` if given (a restart on the same address). Its output is
    collected in ``lines``; ``stop()`` presses Ctrl-C."""

    def __init__(self, settings: str, *args: str, env: dict | None = None, cwd: str = ROOT,
                 command: str = "runserver", ready: str = "Quit the server with",
                 port: int | None = None):
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.lines: list[str] = []
        self._changed = threading.Condition()
        if command in ("runserver", "runwsserver"):
            args = (f"127.0.0.1:{self.port}", *args)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "django", command, *args],
            cwd=cwd, env=command_env(settings, env), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, preexec_fn=_as_from_a_terminal)
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.wait_for(ready)
        except BaseException:
            self.kill()
            raise

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20, count: int = 1) -> None:
        """Wait until ``text`` is in ``count`` lines of the output."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while sum(text in line for line in self.lines) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or (self.process.poll() is not None
                                      and sum(text in line for line in self.lines) < count):
                    raise AssertionError(
                        f"{text!r} not in the output of runserver (exit code "
                        f"{self.process.poll()}):\n" + "\n".join(self.lines))
                self._changed.wait(min(remaining, 0.1))

    def stop(self, timeout: float = 15, presses: int = 1) -> int:
        """Press Ctrl-C (SIGINT to the process group, as a terminal does)
        ``presses`` times and return the exit code."""
        for _ in range(presses):
            if self.process.poll() is None:
                os.killpg(self.process.pid, signal.SIGINT)
                time.sleep(0.02)
        try:
            return self.process.wait(timeout)
        finally:
            self.kill()

    def kill(self) -> None:
        """End what is left of the process group (the reloader's child)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()
        self.process.stdout.close()
