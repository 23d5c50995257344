"""One client against the others (issue 17, items 1 and 2), on runwsserver
and runworker processes on a throwaway Redis, as the issue measured it:

- burst: one socket sends 150 tiny frames in one write while three others
  chat (``websocket.receive`` holds 100 messages, two workers take 20 ms a
  message): how many of the three are closed, their slowest echo, and
  what the sender gets;
- unread: five clients that read nothing are sent 500 KB messages by six
  workers (each waits while its client's reply channel is paused, as
  ``send_patiently`` does): the server's RSS over ``--seconds``.

    python testproject/benchmarks/fairness.py [--code DIR ...] [--seconds 25]

Each ``--code`` runs the server and the workers from that checkout (a
``git archive`` of another commit, say), this one's by default; given
several, they take turns, so that the figures before a change are
measured beside those after it in one run.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PROJECT = os.path.dirname(HERE)
REPO = os.path.dirname(PROJECT)
# Not this directory, whose websocket.py would hide websocket-client.
sys.path[0:1] = [REPO, PROJECT]

import websocket  # noqa: E402

from benchmarks.websocket import rss_kib, start  # noqa: E402
from tests.support.redis_servers import RedisServer  # noqa: E402

PYTHON = sys.executable


def processes(code: str, redis_url: str, workers: int) -> tuple[list, int]:
    env = dict(os.environ, CHANNELS_REDIS_HOSTS=redis_url, PYTHONPATH=f"{code}:{PROJECT}",
               DJANGO_SETTINGS_MODULE="benchmarks.fairness_settings")
    server, port = start([PYTHON, "-m", "django", "runwsserver", "127.0.0.1:0"],
                         env, r"http://127\.0\.0\.1:(\d+)/")
    started = [server]
    for _ in range(workers):
        started.append(start([PYTHON, "-m", "django", "runworker", "--prefetch", "1"],
                             env, r"(Running worker)")[0])
    return started, int(port)


def stop(started: list) -> None:
    """The server is stopped, the workers killed: what they were doing does
    not matter any more."""
    started[0].terminate()
    for process in started[1:]:
        process.kill()
    for process in started:
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def connect(port: int, path: str = "/echo/", **options) -> websocket.WebSocket:
    return websocket.create_connection(f"ws://127.0.0.1:{port}{path}", timeout=30, **options)


def next_text(ws: websocket.WebSocket) -> str | int:
    """The next text message, or the close code if the socket closes."""
    while True:
        try:
            opcode, data = ws.recv_data(control_frame=True)
        except (websocket.WebSocketException, OSError):
            return 1006
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big") if data else 1005
        if opcode == websocket.ABNF.OPCODE_TEXT:
            return data.decode()


def burst(code: str, redis_url: str) -> str:
    started, port = processes(code, redis_url, 2)
    try:
        users = [connect(port) for _ in range(3)]
        sender = connect(port)
        sender.sock.sendall(b"".join(
            websocket.ABNF.create_frame(str(index), websocket.ABNF.OPCODE_TEXT).format()
            for index in range(150)))
        closed, slowest = {}, 0.0
        for turn in range(5):
            for index, ws in enumerate(users):
                if index in closed:
                    continue
                began = time.monotonic()
                ws.send(f"{index}-{turn}")
                answer = next_text(ws)
                slowest = max(slowest, time.monotonic() - began)
                if answer != f"{index}-{turn}":
                    closed[index] = answer
        echoes, outcome = 0, "all echoed"
        while echoes < 150:
            answer = next_text(sender)
            if isinstance(answer, int):
                outcome = f"closed {answer}"
                break
            echoes += 1
        for ws in [*users, sender]:
            ws.close()
        return (f"others closed: {len(closed)} of 3 {sorted(closed.values())}, slowest echo "
                f"{slowest * 1000:.0f} ms; the sender: {outcome} after {echoes} echoes")
    finally:
        stop(started)


def unread(code: str, redis_url: str, seconds: float) -> str:
    started, port = processes(code, redis_url, 6)
    try:
        server = started[0]
        check = connect(port)
        check.send("warm")
        next_text(check)
        before = rss_kib(server.pid) / 1024
        clients = [connect(port, "/firehose/",
                           sockopt=[(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)])
                   for _ in range(5)]
        for client in clients:
            client.send(str(seconds))
        peak = before
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            peak = max(peak, rss_kib(server.pid) / 1024)
            time.sleep(0.5)
        end = rss_kib(server.pid) / 1024
        check.send("still")
        served = next_text(check) == "still"
        for client in clients:
            client.sock.close()
        check.close()
        return (f"server RSS {before:.0f} MiB before, {peak:.0f} MiB at most, {end:.0f} MiB "
                f"after {seconds:.0f} s; another client served meanwhile: {served}")
    finally:
        stop(started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--code", action="append", help="A checkout to run (default: this one).")
    parser.add_argument("--seconds", type=float, default=25.0)
    options = parser.parse_args()
    codes = options.code or [REPO]
    redis_server = RedisServer().start()
    try:
        for code in codes:
            print(f"burst  [{code}]: {burst(code, redis_server.url)}", flush=True)
        for code in codes:
            print(f"unread [{code}]: {unread(code, redis_server.url, options.seconds)}",
                  flush=True)
    finally:
        redis_server.cleanup()


if __name__ == "__main__":
    main()
