"""Presence on the Redis layer against plain groups, in one run, on three
throwaway redis-server processes (docs/presence.rst, "Costs").

Figures, each printed with its baseline and target:

- a connection joining and leaving a room of MEMBERS present
  (``Presence.add`` then ``remove``: the scripts, the group's calls, the
  state sent to the newcomer and the two diffs broadcast to the room),
  against what a chat without presence does for the same: ``Group.add``
  and ``discard``, and one message to the room on each; both then read
  what the room was sent, as its interface server does (target: at least
  40% of the baseline's rate: presence makes seven round trips to Redis
  where the baseline makes six, and sends the newcomer the whole room).
- a sweep that is not due, as every worker process makes on each shard
  once per HEARTBEAT_INTERVAL, against the read of the interface servers'
  heartbeats that it makes as often already (target: at least 75% of its
  rate).

    python testproject/benchmarks/presence.py [--joins N]
"""

import argparse
import os
import secrets
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from redis_layer import MISSED, rates, report  # noqa: E402  (configures Django)

from channels import Group  # noqa: E402
from channels.heartbeats import INTERFACE  # noqa: E402
from channels.presence import Presence  # noqa: E402
from tests.support.redis_servers import RedisServer, redis_backend, stop_all  # noqa: E402

COMMAND = "python testproject/benchmarks/presence.py"
MEMBERS = 100


def reply_channel(process: str) -> str:
    return f"!websocket.send.{process}-{secrets.token_hex(16)}"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--joins", type=int, default=300)
    options = parser.parse_args()
    servers = [RedisServer().start() for _ in range(3)]
    try:
        backend = redis_backend(servers)
        process = secrets.token_hex(8)
        backend.set_heartbeat(INTERFACE, process, {"id": process}, ttl=3600)
        room = Presence("room-lobby", channel_backend=backend)
        group = Group("room-plain", channel_backend=backend)

        def drain():
            # The members' messages, read as their interface server would.
            while backend.receive_batch([f"!websocket.send.{process}-"], 1000, 0):
                pass

        for n in range(MEMBERS):
            room.add(reply_channel(process), f"user{n}", {"name": f"user {n}"})
            group.add(reply_channel(process))
            drain()
        print(f"$ {COMMAND} --joins {options.joins}")
        print(f"3 redis-server processes, a room of {MEMBERS} present")

        def presence_join_leave():
            channel = reply_channel(process)
            room.add(channel, "newcomer", {"name": "newcomer"})
            room.remove(channel)
            drain()

        def group_join_leave():
            channel = reply_channel(process)
            group.add(channel)
            group.send({"text": "joined"})
            group.discard(channel)
            group.send({"text": "left"})
            drain()

        def sweep_not_due():
            backend.presence_sweep(INTERFACE)

        def read_heartbeats():
            backend.heartbeats(INTERFACE)

        backend.presence_sweep(INTERFACE)  # the next is due an interval on
        best = rates({"presence": presence_join_leave, "group": group_join_leave},
                     options.joins)
        report("join and leave, room of 100 (per second)", f"{best['presence']:,.0f}",
               f"{best['group']:,.0f}", ">= 40%", best["presence"] >= best["group"] * 0.4)
        best = rates({"sweep": sweep_not_due, "read": read_heartbeats}, options.joins * 10)
        report("sweep not due, 3 shards (per second)", f"{best['sweep']:,.0f}",
               f"{best['read']:,.0f}", ">= 75%", best["sweep"] >= best["read"] * 0.75)
        backend.close()
    finally:
        stop_all()
        for server in servers:
            server.cleanup()
    if MISSED:
        print(f"\n{len(MISSED)} target(s) missed: {'; '.join(MISSED)}")
    return 1 if MISSED else 0


if __name__ == "__main__":
    sys.exit(main())
