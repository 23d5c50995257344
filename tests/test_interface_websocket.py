"""The interface server's WebSocket side, through real sockets and a real
client (websocket-client), with real worker threads behind it."""

import os
import socket
import threading
import time

import websocket
from django.test import SimpleTestCase, override_settings

from channels.interfaces.threaded import start_server
from tests.interface_consumers import routing_without_connect, seen, seen_lock
from tests.support.interface_server import (
    handshake,
    raw_request,
    send_burst,
    serving,
    status_of,
)
from tests.support.worker_threads import wait_for

NO_CONNECT = "tests.interface_consumers.routing_without_connect"


def connect(handle, path="/echo/", **kwargs):
    kwargs.setdefault("timeout", 5)
    return websocket.create_connection(f"ws://127.0.0.1:{handle.port}{path}", **kwargs)


def handshake_status(handle, path, **kwargs):
    try:
        connect(handle, path, **kwargs).close()
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    return 101


def close_code(ws):
    """Read until the close frame; its code."""
    while True:
        opcode, data = ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(data[:2], "big")


class WebSocketTests(SimpleTestCase):
    def test_echo_text_binary_and_empty_in_order(self):
        with serving() as (handle, _):
            ws = connect(handle, "/echo/?x=1")
            for text in ["one", "two", "", "é ☃"]:
                ws.send(text)
                self.assertEqual(ws.recv(), text)
            for data in [b"\x00\xff", b"", os.urandom(100_000)]:
                ws.send_binary(data)
                self.assertEqual(ws.recv(), data)
            ws.close()
            wait_for(lambda: seen["disconnect"])
        with seen_lock:
            orders = [order for _, order in seen["receive_order"]]
            disconnect = seen["disconnect"][0]
        self.assertEqual(orders, [1, 2, 3, 4, 5, 6, 7])
        self.assertEqual(disconnect["order"], 8)
        self.assertEqual(disconnect["code"], 1000)
        self.assertEqual(disconnect["path"], "/echo/")

    def test_connect_consumer_can_reject_or_close(self):
        with serving() as (handle, _):
            self.assertEqual(handshake_status(handle, "/reject/"), 403)
            self.assertEqual(handshake_status(handle, "/close/"), 403)
            # A connect consumer that raises: the worker closes it.
            self.assertEqual(handshake_status(handle, "/fail/"), 403)

    def test_frame_from_connect_consumer_accepts_and_arrives_first(self):
        with serving() as (handle, _):
            ws = connect(handle, "/hello/?name=ann")
            self.assertEqual(ws.recv(), "hello ann")
            ws.close()

    def test_handshake_waits_for_worker_then_fails_with_503(self):
        with serving(connect_timeout=0.5) as (handle, _):
            start = time.monotonic()
            self.assertEqual(handshake_status(handle, "/slow/?delay=2"), 503)
            elapsed = time.monotonic() - start
            self.assertGreater(elapsed, 0.45)
            self.assertLess(elapsed, 1.9)  # the consumer answers after 2 s
            # A consumer slower than nothing but faster than the timeout is fine.
            self.assertEqual(handshake_status(handle, "/slow/?delay=0.2"), 101)

    def test_no_connect_consumer_accepts_at_once(self):
        with serving(routing=NO_CONNECT, workers=1) as (handle, _):
            ws = connect(handle, "/anything/")
            ws.send("x")
            self.assertEqual(ws.recv(), "x")
            ws.close()
        self.assertNotIn("websocket.connect", routing_without_connect)

    def test_message_over_limit_closes_1009(self):
        with serving(max_message_size=1000) as (handle, _):
            ws = connect(handle)
            ws.send("a" * 1000)
            self.assertEqual(ws.recv(), "a" * 1000)
            ws.send("a" * 1001)
            self.assertEqual(close_code(ws), 1009)

    def test_application_close_code(self):
        with serving() as (handle, _):
            ws = connect(handle, "/closeme/")
            ws.send("4001")
            self.assertEqual(ws.recv(), "bye")
            self.assertEqual(close_code(ws), 4001)
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 4001)

    def test_channel_full_closes_1013_a_socket_over_its_share(self):
        # Nobody consumes websocket.receive, which holds one message; the
        # socket sends more than its messages in flight at once.
        with serving(routing=NO_CONNECT, worker_channels=["websocket.disconnect"],
                     backend_options={"channel_capacity": {"websocket.receive": 1}}
                     ) as (handle, _):
            ws = connect(handle)
            send_burst(ws, ["fits", *["full"] * 5])
            self.assertEqual(close_code(ws), 1013)

    def test_origin_must_be_the_sites_own_scheme_host_and_port(self):
        with serving() as (handle, _):
            own = f"http://127.0.0.1:{handle.port}"
            self.assertEqual(handshake_status(handle, "/echo/", origin=own), 101)
            # The attacks of issue 17: another port, another scheme, another
            # host that ALLOWED_HOSTS lists; all with the user's cookies.
            for origin in ("http://127.0.0.1:9999", "https://localhost",
                           f"https://127.0.0.1:{handle.port}", "http://localhost",
                           "http://evil.example"):
                self.assertEqual(handshake_status(handle, "/echo/", origin=origin), 403, origin)
            # Autobahn itself refuses an Origin that is not a URL.
            self.assertIn(handshake_status(handle, "/echo/", origin="null"), (400, 403))

    def test_origin_behind_a_proxy_is_the_forwarded_scheme(self):
        with serving(proxy_headers=True) as (handle, _):
            headers = ["X-Forwarded-Proto: https", "X-Forwarded-For: 10.0.0.1"]
            self.assertEqual(handshake_status(
                handle, "/echo/", host="localhost", origin="https://localhost",
                header=headers), 101)
            self.assertEqual(handshake_status(
                handle, "/echo/", host="localhost", origin="http://localhost",
                header=headers), 403)

    def test_old_drafts_and_their_origin_header_are_refused(self):
        # Version 8 (hybi-10) carries its origin in Sec-WebSocket-Origin,
        # which the origin check would not see; no browser sends it.
        with serving() as (handle, _):
            head = raw_request(handle.port, handshake(
                b"Sec-WebSocket-Origin: http://evil.example\r\n", version=b"8"))
            self.assertEqual(status_of(head), 400, head)
            self.assertIn(b"sec-websocket-version: 13", head.lower())
            ws = connect(handle)  # the server goes on serving
            ws.close()

    @override_settings(CHANNELS_ALLOWED_ORIGINS=["https://app.example"])
    def test_origin_setting(self):
        with serving() as (handle, _):
            self.assertEqual(
                handshake_status(handle, "/echo/", origin="https://app.example"), 101)
            self.assertEqual(
                handshake_status(handle, "/echo/", origin="http://localhost"), 403)
            # The setting replaces the site's own origin.
            self.assertEqual(handshake_status(
                handle, "/echo/", origin=f"http://127.0.0.1:{handle.port}"), 403)

    @override_settings(CSRF_TRUSTED_ORIGINS=["https://*.example.org"])
    def test_csrf_trusted_origins_may_open_sockets(self):
        with serving() as (handle, _):
            self.assertEqual(
                handshake_status(handle, "/echo/", origin="https://chat.example.org"), 101)
            self.assertEqual(
                handshake_status(handle, "/echo/", origin="http://chat.example.org"), 403)

    def test_host_checked_against_allowed_hosts(self):
        with serving() as (handle, _):
            self.assertEqual(handshake_status(handle, "/echo/", host="evil.example"), 400)

    def test_permessage_deflate_offer_is_accepted(self):
        # Browsers always offer it; accepting it once broke every handshake.
        with serving() as (handle, _):
            head = raw_request(handle.port, handshake(
                b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                b"Origin: http://localhost\r\n"), read_until_close=False)
        self.assertEqual(status_of(head), 101, head)
        self.assertIn(b"permessage-deflate", head.lower())

    def test_keepalive_for_open_sockets(self):
        # EXPIRY 2: a keepalive for each socket every second.
        with serving(backend_options={"expiry": 2}, websocket_keepalive=True) as (handle, _):
            sockets = [connect(handle) for _ in range(3)]
            wait_for(lambda: len(set(seen["keepalive"])) == 3, timeout=4)
            for ws in sockets:
                ws.close()

    def test_no_keepalive_unless_asked_for(self):
        # Routed, but WEBSOCKET_KEEPALIVE is off by default.
        with serving(backend_options={"expiry": 2}) as (handle, _):
            self.assertFalse(handle.server.keepalive_routed)
            ws = connect(handle)
            time.sleep(1.5)  # a keepalive interval: the period is the subject
            ws.close()
            self.assertEqual(seen["keepalive"], [])

    def test_closed_socket_leaves_its_groups_without_a_consumer_discarding(self):
        with serving(backend_options={"group_expiry": 3600}) as (handle, backend):
            sockets = [connect(handle, "/join/?group=room") for _ in range(3)]
            wait_for(lambda: len(backend.group_channels("room")) == 3)
            sockets[0].close()
            sockets[1].sock.shutdown(socket.SHUT_RDWR)  # dropped, no close frame
            sockets[1].sock.close()
            wait_for(lambda: len(backend.group_channels("room")) == 1)
            backend.send_group("room", {"text": "to the last"})
            self.assertEqual(sockets[2].recv(), "to the last")
            sockets[2].close()
            wait_for(lambda: backend.group_channels("room") == [])

    def test_stop_closes_with_1001_and_sends_disconnect(self):
        with serving() as (handle, _):
            ws = connect(handle)
            ws.send("x")
            ws.recv()
            stopping = threading.Thread(target=handle.stop, kwargs={"timeout": 2})
            stopping.start()
            self.assertEqual(close_code(ws), 1001)
            stopping.join()
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1001)

    def test_connection_cap(self):
        with serving(max_connections=2) as (handle, _):
            first, second = connect(handle), connect(handle)
            self.assertEqual(handshake_status(handle, "/echo/"), 503)
            first.close()
            wait_for(lambda: handle.server.connection_count() == 1)
            third = connect(handle)
            second.close()
            third.close()

    def test_client_that_stops_reading_is_closed_1008(self):
        with serving(write_timeout=0.3, max_websocket_buffer=1024 * 1024) as (handle, _):
            ws = connect(handle, "/flood/")
            ws.send("40")  # 20 MB the client never reads
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1008)
            self.assertEqual(handle.server.connection_count(), 0)

    def test_client_dropping_gives_1006(self):
        with serving() as (handle, _):
            ws = connect(handle)
            ws.sock.shutdown(socket.SHUT_RDWR)
            ws.sock.close()
            wait_for(lambda: seen["disconnect"])
            self.assertEqual(seen["disconnect"][0]["code"], 1006)

    def test_unrouted_keepalive_and_disconnect_are_not_sent(self):
        with serving(routing="tests.interface_consumers.routing_receive_only",
                     backend_options={"expiry": 2}) as (handle, backend):
            ws = connect(handle)
            ws.send("x")
            self.assertEqual(ws.recv(), "x")
            time.sleep(1.5)  # a keepalive interval
            ws.close()
            time.sleep(0.2)
            self.assertEqual(
                backend.receive_many(["websocket.keepalive", "websocket.disconnect"]),
                (None, None))

    def test_two_servers_on_one_backend_in_one_process(self):
        # They share one receiver (replies are read through process-wide
        # wildcards), and each reply still reaches its own connection.
        with serving() as (first, backend):
            second = start_server(backend, "127.0.0.1", 0)
            try:
                sockets = [connect(first), connect(second), connect(first)]
                for index, ws in enumerate(sockets):
                    ws.send(f"to {index}")
                for index, ws in enumerate(sockets):
                    self.assertEqual(ws.recv(), f"to {index}")
                    ws.close()
            finally:
                second.stop()
            # The first keeps serving after the second stopped.
            ws = connect(first)
            ws.send("still")
            self.assertEqual(ws.recv(), "still")
            ws.close()
