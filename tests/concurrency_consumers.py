"""Consumers of test_worker_concurrency, run by real ``runworker``
processes with threads and under the supervisor.

Runs are written to ``runs.txt`` in CHANNELS_TEST_RUNS (as in
tests/liveness_consumers.py), with their start and end times, so that the
test sees which ran at the same time. Every HTTP answer is the pid of the
process that ran it.
"""

import os
import threading
import time

from channels.decorators import enforce_ordering
from tests.liveness_consumers import record, wait_for_release


def http_request(message):
    query = message["query"]
    name = query.get("name", ["-"])[0]
    if message["path"] == "/wait/":
        start = time.time()
        time.sleep(int(query["ms"][0]) / 1000)
        record(f"wait {name} {start} {time.time()}")
    elif message["path"] == "/die/":
        record(f"die {name}")
        os._exit(1)  # a worker process crashing
    elif message["path"] == "/block/":
        record(f"start {name}")
        wait_for_release(name)
        record(f"end {name}")
    message.reply_channel.send({"status": 200, "headers": [],
                                "content": str(os.getpid()).encode()})


@enforce_ordering
def ws_connect(message):
    message.reply_channel.send({"accept": True})


@enforce_ordering
def ws_receive(message):
    """Counts the connection's messages in its channel session, and takes
    long enough that a second thread running the same connection at once
    would show in the times."""
    session = message.channel_session
    session["count"] = count = session.get("count", 0) + 1
    start = time.time()
    time.sleep(0.005)
    record(f"ws {message['text']} {count} {start} {time.time()} "
           f"{threading.current_thread().name}")
    message.reply_channel.send({"text": f"{message['text']} {count}"})


routing = {
    "http.request": http_request,
    "websocket.connect": ws_connect,
    "websocket.receive": ws_receive,
}
