"""Consumers behind the interface server tests, dispatched by path."""

import threading
import time

from channels.backends.base import BaseChannelBackend
from channels.decorators import enforce_ordering
from channels.exceptions import ChannelFull
from channels.messages.http import BODY_CHUNK_SIZE
from channels.worker.sending import send_patiently

# What websocket.disconnect / keepalive consumers saw, for assertions.
seen: dict[str, list] = {"disconnect": [], "keepalive": [], "receive_order": [],
                         "http_disconnect": [], "big_sent": [], "held": [], "firehose": []}
seen_lock = threading.Lock()
# Requests of /hold/ in progress, by reply channel: set by their http.disconnect.
released: dict[str, threading.Event] = {}


def ws_connect(message):
    path = message["path"]
    if path.startswith("/reject/"):
        message.reply_channel.send({"accept": False})
    elif path.startswith("/close/"):
        message.reply_channel.send({"close": True})
    elif path.startswith("/slow/"):
        time.sleep(float(message["query"]["delay"][0]))
    elif path.startswith("/hello/"):
        message.reply_channel.send({"text": "hello " + message["query"].get("name", ["?"])[0]})
    elif path.startswith("/fail/"):
        raise RuntimeError("connect consumer failed")
    elif path.startswith("/join/"):
        # No consumer discards it: the server's own leaving on close must.
        message.channel_backend.group_add(message["query"]["group"][0],
                                          message["reply_channel"])


def ws_receive(message):
    path = message["path"]
    with seen_lock:
        seen["receive_order"].append((message["reply_channel"], message["order"]))
    if path.startswith("/flood/"):
        for _ in range(int(message["text"])):
            message.reply_channel.send({"bytes": b"x" * 500_000})
    elif path.startswith("/firehose/"):
        # Sends of 500 KB, as many as the text says, each retried while the
        # reply channel is paused (its client is behind); gives up on the
        # first that waits over 20 s. Records how many were sent.
        sent = 0
        try:
            for _ in range(int(message["text"])):
                send_patiently(message.channel_backend, message.reply_channel.name,
                               {"bytes": b"x" * 500_000}, 20)
                sent += 1
        except ChannelFull:
            pass
        with seen_lock:
            seen["firehose"].append(sent)
    elif path.startswith("/slow-echo/"):
        time.sleep(0.02)
        message.reply_channel.send({"text": message["text"]})
    elif path.startswith("/closeme/"):
        message.reply_channel.send({"text": "bye", "close": int(message["text"])})
    elif "text" in message.content:
        message.reply_channel.send({"text": message["text"]})
    else:
        message.reply_channel.send({"bytes": message["bytes"]})


def ws_disconnect(message):
    with seen_lock:
        seen["disconnect"].append(dict(message.content))


def ws_keepalive(message):
    with seen_lock:
        seen["keepalive"].append(message["reply_channel"])


def http_disconnect(message):
    with seen_lock:
        seen["http_disconnect"].append(dict(message.content))
        left = released.get(message["reply_channel"])
    if left is not None:
        left.set()


def hold(message):
    """/hold/?seconds=S answers after S seconds (default: 30), or stops at
    its http.disconnect; ?stream=1 sends the start of the response at once
    and the rest then. Records its reply channel in seen["held"] once it
    runs, and "gone" there if the client left first."""
    reply = message.reply_channel
    query = message["query"]
    stream = query.get("stream") == ["1"]
    left = threading.Event()
    with seen_lock:
        released[reply.name] = left
    if stream:
        reply.send({"status": 200, "headers": [["Content-Type", "text/plain"]],
                    "content": b"start\n", "more_content": True})
    with seen_lock:
        seen["held"].append(reply.name)
    if left.wait(float(query.get("seconds", ["30"])[0])):
        with seen_lock:
            seen["held"].append("gone")
        return
    if stream:
        reply.send({"content": b"end\n"})
    else:
        reply.send({"status": 200, "headers": [], "content": b"held"})


def http_request(message):
    path = message["path"]
    reply = message.reply_channel
    if path == "/hold/":
        hold(message)
    elif path == "/slow/":
        time.sleep(float(message["query"]["delay"][0]))
        reply.send({"status": 200, "headers": [], "content": b"late"})
    elif path == "/stream/":
        for index in range(3):
            reply.send({"status": 200, "headers": [["Content-Type", "text/plain"]],
                        "content": b"part0\n", "more_content": True} if index == 0
                       else {"content": f"part{index}\n".encode(), "more_content": index < 2})
            time.sleep(0.5)
    elif path == "/big/":
        # ``chunks`` chunks of 512 KiB, sent as fast as the layer takes them
        # and retried while the reply channel is full, as Django's handler does.
        chunks = int(message["query"]["chunks"][0])
        send_patiently(message.channel_backend, reply.name,
                       {"status": 200, "headers": [["Content-Type", "application/octet-stream"]],
                        "content": b"", "more_content": True}, 30)
        for index in range(chunks):
            send_patiently(message.channel_backend, reply.name,
                           {"content": b"x" * BODY_CHUNK_SIZE, "more_content": index < chunks - 1},
                           30)
        seen["big_sent"].append(chunks)
    elif path == "/bad/":
        reply.send({"status": "nope"})
    elif path == "/body/":
        # ?pause=S waits S seconds before reading the body channel, and
        # ?delay=S that long before each further chunk: a slow view.
        query = message["query"]
        pause, delay = (float(query.get(name, ["0"])[0]) for name in ("pause", "delay"))
        body = bytearray(message["body"])
        channel = message["body_channel"]
        backend: BaseChannelBackend = message.channel_backend
        time.sleep(pause)
        while channel is not None:
            _, chunk = backend.receive_many_blocking([channel], 10)
            if chunk is None or chunk.get("closed"):
                return  # the client is gone: nobody to answer
            body += chunk["content"]
            if not chunk["more_content"]:
                break
            time.sleep(delay)
        import hashlib

        reply.send({"status": 200, "headers": [["Content-Type", "text/plain"]],
                    "content": f"{len(body)} {hashlib.sha256(body).hexdigest()}".encode()})
    else:
        content = "{} {} {} {}".format(
            message["method"], path, message["query"], message["cookies"]).encode()
        reply.send({"status": 200, "headers": [["Content-Type", "text/plain; charset=utf-8"],
                                               ["Set-Cookie", "a=1"]], "content": content})


routing = {
    "websocket.connect": ws_connect,
    "websocket.receive": ws_receive,
    "websocket.disconnect": ws_disconnect,
    "websocket.keepalive": ws_keepalive,
    "http.request": http_request,
    "http.disconnect": http_disconnect,
}

# Without a websocket.connect consumer the server accepts at once.
routing_without_connect = {k: v for k, v in routing.items() if k != "websocket.connect"}


@enforce_ordering
def ordered_receive(message):
    with seen_lock:
        seen["receive_order"].append((message["reply_channel"], message["order"]))
    message.reply_channel.send({"text": message["text"]})


ordered_routing = {"websocket.receive": ordered_receive}

# Only receive: keepalives and disconnects have nobody to go to.
routing_receive_only = {"websocket.receive": ws_receive}
