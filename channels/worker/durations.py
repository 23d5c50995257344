"""How long a worker's consumers take, as its heartbeat reports it
(``busy`` and ``slowest``, docs/heartbeats.rst): a running total, so that
any reader's mean over any period is the difference of two records
divided by the difference of their ``handled``, and the longest run of the
last one or two windows, which a total would hide."""

from __future__ import annotations

import time


class Durations:
    """The consumer run times of one worker loop. Written by its thread,
    read by the heartbeat's: each field is one float, read whole."""

    def __init__(self, window: float):
        self.window = window
        self.total = 0.0
        self._window_end = time.monotonic() + window
        self._longest = 0.0  # of the window that ends at _window_end
        self._previous = 0.0  # of the window before it

    def _roll(self, now: float) -> None:
        if now >= self._window_end:
            skipped = now >= self._window_end + self.window  # a whole window idle
            self._previous = 0.0 if skipped else self._longest
            self._longest = 0.0
            self._window_end = now + self.window

    def add(self, seconds: float, now: float) -> None:
        """A run of ``seconds`` that ended at ``now`` (``time.monotonic()``)."""
        self._roll(now)
        self.total += seconds
        if seconds > self._longest:
            self._longest = seconds

    def slowest(self) -> float:
        """The longest run that ended in the last one to two windows."""
        self._roll(time.monotonic())
        return max(self._longest, self._previous)
