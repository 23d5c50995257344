#!/usr/bin/env python
"""``make demo-cluster``: the chat on the sharded design, in one terminal.

Three throwaway ``redis-server`` shards (free loopback ports, nothing saved,
their directory deleted at the end), one ``runwsserver`` and two
``runworker`` processes, all run by honcho from ``testproject/Procfile``,
with their logs interleaved and Ctrl-C stopping them all. A ``status``
process prints what each shard holds and does as it changes.

    python testproject/demo_cluster.py            # what make demo-cluster runs
    DEMO_WEB_PORT=8080 python testproject/demo_cluster.py

The Procfile's processes call this script too: ``wait`` (until every shard
answers) and ``status``.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHARDS = 3
# How often the status line is looked at; it is printed when it changed.
STATUS_EVERY = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def shard_urls() -> list[str]:
    return os.environ["CHANNELS_REDIS_HOSTS"].split()


def wait(timeout: float = 30) -> None:
    """Return once every shard answers PING (honcho starts everything at once)."""
    import redis

    deadline = time.monotonic() + timeout
    for url in shard_urls():
        client = redis.Redis.from_url(url, socket_timeout=1)
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    sys.exit(f"Redis at {url} did not answer within {timeout:.0f} s")
                time.sleep(0.1)


def status() -> None:
    """Print, whenever it changes, each shard's keys (channels, groups,
    inboxes) and commands per second: the load spreading over the shards."""
    import redis

    clients = [(url, redis.Redis.from_url(url, socket_timeout=2)) for url in shard_urls()]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    last = None
    while True:
        parts = []
        for number, (url, client) in enumerate(clients, 1):
            try:
                info = client.info("stats")
                parts.append(f"shard {number} (:{url.rsplit(':', 1)[1].split('/')[0]}) "
                             f"{client.dbsize()} keys, "
                             f"{info['instantaneous_ops_per_sec']} commands/s")
            except redis.RedisError:
                parts.append(f"shard {number} DOWN")
        line = " | ".join(parts)
        if line != last:
            print(line, flush=True)
            last = line
        time.sleep(STATUS_EVERY)


def main() -> int:
    if shutil.which("redis-server") is None:
        sys.exit("redis-server is not on PATH; install it (apt-get install redis-server).")
    ports = [free_port() for _ in range(SHARDS)]
    web_port = os.environ.get("DEMO_WEB_PORT", "8000")
    directory = tempfile.mkdtemp(prefix="channels-demo-cluster-")
    hosts = " ".join(f"redis://127.0.0.1:{port}/0" for port in ports)
    env = dict(os.environ, CHANNELS_REDIS_HOSTS=hosts, DEMO_REDIS_DIR=directory,
               DEMO_WEB_PORT=web_port, PYTHONUNBUFFERED="1",
               DJANGO_SETTINGS_MODULE="testproject.settings",
               # The Procfile's "python" is this one (the virtual environment's).
               PATH=os.pathsep.join([os.path.dirname(sys.executable), os.environ["PATH"]]),
               **{f"DEMO_REDIS_PORT_{n}": str(port) for n, port in enumerate(ports, 1)})
    manage = [sys.executable, os.path.join(HERE, "manage.py")]
    subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], env=env, check=True)
    subprocess.run([*manage, "demo_users"], env=env, check=True)
    print(f"""
channels demo cluster: the chat on three Redis shards.
  Redis shards   {hosts}
                 (throwaway: nothing saved; CHANNELS_REDIS_HOSTS for every process)
  web            runwsserver on http://127.0.0.1:{web_port}/: HTTP, WebSocket, static files
  worker1, 2     runworker: consumers and Django views, from any shard
  status         each shard's keys and commands per second, when they change
Open http://127.0.0.1:{web_port}/ in two windows; log in as alice and bob (password
demo-password). The status page, http://127.0.0.1:{web_port}/channels/status/, is for
the staff user admin (same password); from another terminal:
  CHANNELS_REDIS_HOSTS="{hosts}" python testproject/manage.py channels_status
Logs follow, one colour per process. Ctrl-C stops them all.
""", flush=True)
    # Ctrl-C reaches honcho too (the same process group); it stops the
    # processes, and this one waits for it, then deletes the shards' directory.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        return subprocess.call([sys.executable, "-m", "honcho", "-f",
                                os.path.join(HERE, "Procfile"), "start"], env=env, cwd=HERE)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:] == ["wait"]:
        wait()
    elif sys.argv[1:] == ["status"]:
        status()
    else:
        sys.exit(main())
