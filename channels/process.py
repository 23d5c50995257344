"""This process's id, kept current across forks.

Several parts keep state that a forked child must make afresh rather than
share with its parent: Redis connections, the token in response channel
names, helper threads. Each remembers the id of the process that made it
and compares it with ``process.pid``. A fork hook keeps ``pid``, because
``os.getpid()`` is a system call and some of these checks run for every
message.
"""

import os

pid = os.getpid()


def _forked() -> None:
    global pid
    pid = os.getpid()


os.register_at_fork(after_in_child=_forked)
