"""Consumers for the tests of workers dying and of no worker running
(test_liveness_processes), run by real ``runworker`` processes.

Each run is written to ``runs.txt`` in the directory named by the
CHANNELS_TEST_RUNS environment variable, so the test counts the runs of
every message across processes: ``start <name>`` when a consumer starts,
``end <name>`` when it ends. A blocking consumer (path ``/block/``) waits
until the test creates ``release-<name>`` in that directory.
"""

import os
import time

RUNS = os.environ.get("CHANNELS_TEST_RUNS", "")


def record(line: str) -> None:
    with open(os.path.join(RUNS, "runs.txt"), "a") as runs:
        runs.write(line + "\n")


def wait_for_release(name: str) -> None:
    deadline = time.monotonic() + 120
    while not os.path.exists(os.path.join(RUNS, f"release-{name}")):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} was never released")
        time.sleep(0.01)


def http_request(message):
    name = message["query"]["name"][0]
    record(f"start {name}")
    if message["path"] == "/block/":
        wait_for_release(name)
    record(f"end {name}")
    message.reply_channel.send({"status": 200, "headers": [], "content": name.encode()})


def ws_connect(message):
    if message["path"] == "/block-connect/":
        name = message["query"]["name"][0]
        record(f"start {name}")
        wait_for_release(name)
        record(f"end {name}")


def ws_receive(message):
    name = message["text"]
    record(f"start {name}")
    if message["path"] == "/block/":
        wait_for_release(name)
    record(f"end {name}")
    message.reply_channel.send({"text": name})


routing = {
    "http.request": http_request,
    "websocket.connect": ws_connect,
    "websocket.receive": ws_receive,
}
