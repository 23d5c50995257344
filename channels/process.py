"""This process's id, kept current across forks.

Several parts keep state that a forked child must make afresh rather than
share with its parent: Redis connections, the token in response channel
names, helper threads. Each remembers the id of the process that made it
and compares it with ``process.pid``. A fork hook keeps ``pid``, because
``os.getpid()`` is a system call and some of these checks run for every
message.
"""

import os
import random as _random_module
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")

pid = os.getpid()


def _forked() -> None:
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_forked)


class PerProcess(Generic[T]):
    """One ``factory()`` per process, made at first use: a forked child,
    which inherits no helper thread of its parent, makes its own."""

    def __init__(self, factory: Callable[[], T]):
        self._factory = factory
        self._made: tuple[int, T] | None = None
        self._lock = threading.Lock()

    def __call__(self) -> T:
        made = self._made
        if made is None or made[0] != pid:
            with self._lock:
                made = self._made
                if made is None or made[0] != pid:
                    made = self._made = (pid, self._factory())
        return made[1]


# The library's own random numbers (load spreading, jitter), apart from the
# random module's: a project that seeds it for its tests gets the sequence
# it expects whatever the backend's threads draw, and hypothesis sees no
# background thread touch it. Seeded afresh in each process, as random's is.
random = PerProcess(_random_module.Random)
