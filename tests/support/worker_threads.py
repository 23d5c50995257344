"""Worker threads for tests that need several workers at once."""

import contextlib
import threading

from channels.worker import Worker


@contextlib.contextmanager
def worker_threads(backend, channels, count):
    """Run ``count`` real workers in threads on ``backend`` (on ``channels``,
    or every routed channel when None); stop and join them on exit."""
    workers = [Worker(backend, channels=channels) for _ in range(count)]
    threads = []
    for worker in workers:
        worker.poll_timeout = 0.02
        thread = threading.Thread(target=worker.run, daemon=True)
        thread.start()
        threads.append(thread)
    try:
        yield workers
    finally:
        for worker in workers:
            worker.stop()
        for thread in threads:
            thread.join(5)
            assert not thread.is_alive(), "a worker thread did not stop"


def wait_for(condition, timeout=5.0):
    """Wait until ``condition()`` is true; fail the test after ``timeout``."""
    event = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if condition():
            return
        event.wait(0.005)
    raise AssertionError("condition not met in time")
