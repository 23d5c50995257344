"""The look at live processes of docs/heartbeats.rst."""

# docs: start
from channels.heartbeats import INTERFACE, WORKER, live


def describe_processes(alias="default"):
    """One line per running worker process and interface server, from
    their heartbeats: what to print from ``manage.py shell`` on any box."""
    lines = []
    for record in live(WORKER, alias):
        lines.append(
            f"worker {record['id']} on {record['host']} (pid {record['pid']}): "
            f"{record['threads']} thread(s), {record['handled']} handled, "
            f"{record['errors']} failed, {len(record['in_hand'])} in hand")
    for record in live(INTERFACE, alias):
        connections = record["connections"]
        lines.append(
            f"interface server {record['id']} on {record['host']} (pid {record['pid']}): "
            f"{connections['http']} HTTP and {connections['websocket']} WebSocket "
            f"connection(s)")
    return lines
# docs: end
