"""The JavaScript client (channels/static/channels/client.js) in headless
Chromium, against real ``runwsserver`` and ``runworker`` processes on a
throwaway Redis: the chat demo's page goes on across restarts of the
interface server, two streams share one socket, and the client reconnects
after the closes it should and only those."""

import json
import os
import shutil
import tempfile
import unittest
from pathlib import Path

from tests.support.browsers import ChatUser, skip_without_browser, start_browser
from tests.support.redis_servers import RedisServer
from tests.support.server_process import ROOT, ServerProcess, manage

DEMO = "testproject.settings"
SNIPPET = Path(ROOT) / "tests" / "docs_examples" / "streams.js"
# The demo's users (testproject/demo/management/commands/demo_users.py).
PASSWORD = "demo-password"
# Generous: a restarted server takes seconds to start on a loaded machine,
# and the client's delays grow while it is down.
RECONNECT_TIME = 90


class ProcessesCase(unittest.TestCase):
    """A throwaway Redis, and ``runwsserver``/``runworker`` of ``settings``
    on it."""

    settings = DEMO

    def start_redis(self) -> dict:
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        return {"CHANNELS_REDIS_HOSTS": f"{redis.url}/0"}

    def serve(self, command, env, port=None) -> ServerProcess:
        ready = {"runwsserver": "Interface server listening",
                 "runworker": "Running worker"}[command]
        process = ServerProcess(self.settings, env=env, command=command, ready=ready,
                                port=port)
        self.addCleanup(process.kill)
        return process


@skip_without_browser
class ReconnectTests(ProcessesCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.browsers = [start_browser(cls), start_browser(cls)]

    def setUp(self):
        tmp = tempfile.mkdtemp(prefix="channels-client-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        self.env = {**self.start_redis(), "DJANGO_DB": os.path.join(tmp, "db.sqlite3")}
        manage(DEMO, "migrate", "--noinput", env=self.env)
        manage(DEMO, "demo_users", env=self.env)  # alice, bob and the room "lobby"
        self.worker = self.serve("runworker", self.env)
        self.server = self.serve("runwsserver", self.env)
        self.alice, self.bob = (ChatUser(browser, self.server.url) for browser in self.browsers)
        for browser in self.browsers:
            self.addCleanup(browser.get, "about:blank")

    def status(self, user) -> str:
        return user.browser.find_element("id", "status").text

    def wait_status(self, user, text):
        user.wait(RECONNECT_TIME).until(lambda _: text in self.status(user))

    def restart(self, how):
        """Stop the interface server (``how``: "stop" presses Ctrl-C, "kill"
        is kill -9), see both pages say they are reconnecting, and start it
        again on the same port."""
        if how == "stop":
            self.assertEqual(self.server.stop(), 0, self.server.output)
        else:
            self.server.kill()
        for user in (self.alice, self.bob):
            self.wait_status(user, "Reconnecting in ")
        return lambda: self.serve("runwsserver", self.env, port=self.server.port)

    def test_the_chat_goes_on_across_restarts_of_the_interface_server(self):
        alice, bob = self.alice, self.bob
        alice.log_in("alice", PASSWORD)
        bob.log_in("bob", PASSWORD)
        alice.enter_room("lobby")
        bob.enter_room("lobby")
        # The page's client, which chat.js exports for the page's other
        # modules: online.js uses the stream "presence" of the same socket.
        state = alice.browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            import("/static/chat/chat.js").then(
              ({ client }) => done([client.state, [...client.streams.keys()].sort()]));
        """)
        self.assertEqual(state, ["open", ["chat", "presence"]])
        alice.wait_for_online(["alice", "bob"])
        alice.say("before the restart")
        bob.wait_for_message("alice: before the restart")

        start = self.restart("stop")  # closes with 1001: going away
        alice.say("typed while it was down")  # held in the client's queue
        self.server = start()
        for user in (alice, bob):
            self.wait_status(user, "Connected")
        bob.wait_for_message("alice: typed while it was down", RECONNECT_TIME)
        bob.say("after the restart")
        alice.wait_for_message("bob: after the restart")

        start = self.restart("kill")  # no close frame: 1006
        self.server = start()
        for user in (alice, bob):
            self.wait_status(user, "Connected")
        alice.say("after the crash")
        bob.wait_for_message("alice: after the crash")

        expected = ["alice: before the restart", "alice: typed while it was down",
                    "bob: after the restart", "alice: after the crash"]
        # The history that came again on each reconnect shows once.
        self.assertEqual(alice.messages(), expected)
        bob.wait().until(lambda _: bob.messages() == expected)
        self.assertEqual(alice.browser.current_url, f"{self.server.url}/rooms/lobby/")
        # Who is online came back with the reconnects, each user once when
        # the killed server's connections have been swept (a heartbeat TTL).
        for user in (alice, bob):
            user.wait_for_online(["alice", "bob"], timeout=60)
        self.assertNotIn("Traceback", self.worker.output)


@skip_without_browser
class ClientTests(ProcessesCase):
    """The client from a page of a server of the test settings, on the
    consumers of ``routing`` (the client imported from its static files)."""

    settings = "tests.client_settings"

    def open_page(self, routing):
        """Start the worker and the server; returns them and a browser on a
        page of the server."""
        redis = self.start_redis()["CHANNELS_REDIS_HOSTS"]
        env = {"CHANNELS_TEST_BACKEND": json.dumps({
            "BACKEND": "channels.backends.redis.RedisChannelBackend",
            "HOSTS": [redis], "ROUTING": routing})}
        worker = self.serve("runworker", env)
        server = self.serve("runwsserver", env)
        browser = start_browser(type(self))
        browser.set_script_timeout(60)
        browser.get(f"{server.url}/static/channels/client.js")  # the page's origin
        return worker, server, browser

    def test_two_streams_share_one_socket(self):
        """docs/client.rst's two streams: tests/docs_examples/streams.py and
        streams.js."""
        worker, server, browser = self.open_page("tests.docs_examples.streams.channel_routing")
        got = browser.execute_async_script("""
            const [snippet, done] = arguments;
            const got = { echo: [], count: [], nowhere: [] };
            const show = (name, value) => {
              got[name].push(value);
              if (got.echo.length === 2 && got.count.length === 2
                  && got.nowhere.length === 1) { done(got); }
            };
            import("/static/channels/client.js").then(({ connect }) => {
              new Function("connect", "show", snippet)(connect, show);
            }, (error) => done("import failed: " + error));
        """, SNIPPET.read_text())
        self.assertEqual(got, {
            "echo": [{"a": [1, "b"]}, "y"],
            "count": [{"count": 1, "last": "x"}, {"count": 2, "last": "z"}],
            "nowhere": ["no such stream"],
        })
        server.wait_for('"GET /ws/streams/ HTTP/1.1" 101')
        self.assertEqual(server.output.count("/ws/streams/"), 1, server.output)
        worker.wait_for("Refused a frame from !")  # the stream nobody routed, logged
        self.assertNotIn("Traceback", worker.output + server.output)

    def test_which_closes_are_final(self):
        """A consumer closes the socket with the code the page sends
        (tests/interface_consumers.py, /closeme/): the client reconnects
        after 3000, not after 1000 or 4000-4999."""
        _, server, browser = self.open_page("tests.interface_consumers.routing")
        outcomes = browser.execute_async_script("""
            const done = arguments[arguments.length - 1];
            const closeWith = (connect, code) => new Promise((resolve) => {
              const client = connect("/closeme/", { json: false, baseDelay: 50 });
              const seen = [];
              client.on("open", () => {
                seen.push("open");
                if (seen.length === 1) { client.send(String(code)); }
                else { client.close(); }  // reconnected: enough
              });
              client.on("message", ({ data }) => seen.push(data));
              client.on("reconnecting", () => seen.push("reconnecting"));
              client.on("close", ({ code, final }) => {
                seen.push(`close ${code}${final ? " final" : ""}`);
                if (final) { resolve(seen); }
              });
            });
            import("/static/channels/client.js").then(async ({ connect }) => {
              const outcomes = {};
              for (const code of [3000, 1000, 4000, 4999]) {
                outcomes[code] = await closeWith(connect, code);
              }
              done(outcomes);
            }, (error) => done("import failed: " + error));
        """)
        reconnected = ["open", "bye", "close 3000", "reconnecting", "open", "close 1000 final"]
        self.assertEqual(outcomes["3000"], reconnected)
        for code in (1000, 4000, 4999):
            self.assertEqual(outcomes[str(code)], ["open", "bye", f"close {code} final"])
        # Five sockets: two for 3000, one for each final close. (The log
        # is read from the server's output as it comes: wait for it.)
        server.wait_for('"GET /closeme/ HTTP/1.1" 101', count=5)
        self.assertEqual(server.output.count('"GET /closeme/ HTTP/1.1" 101'), 5, server.output)
