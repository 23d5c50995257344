// Unit tests of channels/static/channels/client.js under Node's test runner
// (node --test tests/js/; tests/test_client_js.py runs them in the suite):
// the backoff schedule, the queue and the reconnect rules, with the clock,
// the randomness and the socket in the test's hands. The real socket, server
// and browser are tests/test_client_browser.py's.

import assert from "node:assert/strict";
import { describe, it } from "node:test";

import {
  backoffDelay, Client, DEFAULTS, isFinalClose, MAX_STREAM_NAME, SendQueue, socketUrl,
} from "../../channels/static/channels/client.js";

/** Timers that run only when the test moves time on. */
class ManualClock {
  constructor() {
    this.now = 0;
    this.timers = new Map();
    this.next = 1;
  }

  setTimeout(callback, delay) {
    const id = this.next++;
    this.timers.set(id, { at: this.now + delay, callback });
    return id;
  }

  clearTimeout(id) {
    this.timers.delete(id);
  }

  /** Move time on by ``ms``, running each timer that falls due, in order. */
  advance(ms) {
    const end = this.now + ms;
    for (;;) {
      const due = [...this.timers].filter(([, t]) => t.at <= end)
        .sort(([, a], [, b]) => a.at - b.at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].callback();
    }
    this.now = end;
  }
}

/** A WebSocket whose server side the test plays: every instance is kept. */
function socketClass() {
  const made = [];
  class ScriptedSocket {
    constructor(url, protocols) {
      this.url = url;
      this.protocols = protocols;
      this.readyState = 0;
      this.sent = [];
      made.push(this);
    }

    send(data) {
      assert.equal(this.readyState, 1, "sent on a socket that is not open");
      this.sent.push(data);
    }

    close(code, reason) {
      this.closedWith = [code, reason];
      this.readyState = 2;
    }

    // The server's side:
    open() {
      this.readyState = 1;
      this.onopen({});
    }

    receive(data) {
      this.onmessage({ data });
    }

    drop(code = 1006, reason = "") {
      this.readyState = 3;
      this.onclose({ code, reason, wasClean: code !== 1006 });
    }
  }
  return { ScriptedSocket, made };
}

/** A client on a scripted socket and a manual clock, recording its events. */
function makeClient(options = {}) {
  const { ScriptedSocket, made } = socketClass();
  const clock = new ManualClock();
  const randoms = options.randoms ?? [];
  const client = new Client("ws://example.test/ws/", {
    WebSocket: ScriptedSocket, clock, random: () => (randoms.length ? randoms.shift() : 0.5),
    ...options,
  });
  const events = [];
  for (const type of ["open", "close", "reconnecting", "message", "error", "drop"]) {
    client.on(type, (detail) => events.push([type, detail]));
  }
  const socket = () => made[made.length - 1];
  return { client, clock, made, socket, events, of: (type) => events.filter(([t]) => t === type).map(([, d]) => d) };
}

describe("backoffDelay", () => {
  const limits = { baseDelay: 1000, maxDelay: 30000 };

  it("doubles the ceiling each attempt up to maxDelay", () => {
    const almostOne = () => 0.999999;
    const ceilings = [0, 1, 2, 3, 4, 5, 6, 40, 5000].map((a) => backoffDelay(a, limits, almostOne));
    assert.deepEqual(ceilings, [999, 1999, 3999, 7999, 15999, 29999, 29999, 29999, 29999]);
  });

  it("is a uniform fraction of the ceiling (full jitter)", () => {
    assert.equal(backoffDelay(0, limits, () => 0), 0);
    assert.equal(backoffDelay(2, limits, () => 0.25), 1000);
    assert.equal(backoffDelay(9, limits, () => 0.5), 15000);
  });

  it("spreads the clients of one restart", () => {
    const delays = Array.from({ length: 200 }, () => backoffDelay(3, limits));
    assert.ok(delays.every((d) => d >= 0 && d < 8000));
    assert.ok(new Set(delays).size > 100, "random delays are mostly different");
  });
});

describe("isFinalClose", () => {
  it("is final for 1000, 1008 and the application's 4000-4999", () => {
    for (const code of [1000, 1008, 4000, 4403, 4999]) assert.equal(isFinalClose(code), true, code);
  });

  it("reconnects after restarts, drops, errors and the rest", () => {
    for (const code of [1001, 1002, 1003, 1006, 1007, 1009, 1011, 1012, 1013, 3000, 3999, 5000]) {
      assert.equal(isFinalClose(code), false, code);
    }
  });
});

describe("SendQueue", () => {
  it("holds up to its limit, refuses more, and drains oldest first", () => {
    const queue = new SendQueue(3);
    assert.deepEqual(["a", "b", "c", "d"].map((f) => queue.push(f)), [true, true, true, false]);
    assert.equal(queue.size, 3);
    assert.deepEqual(queue.drain(), ["a", "b", "c"]);
    assert.equal(queue.size, 0);
    assert.equal(queue.push("e"), true);
  });

  it("refuses a limit that is not a count", () => {
    for (const limit of [-1, 1.5, "3", undefined]) assert.throws(() => new SendQueue(limit), RangeError);
    assert.equal(new SendQueue(0).push("a"), false);
  });
});

describe("socketUrl", () => {
  it("makes a path on the page's server a ws: or wss: URL", () => {
    assert.equal(socketUrl("/ws/chat/lobby/", "http://example.test:8000/rooms/"),
      "ws://example.test:8000/ws/chat/lobby/");
    assert.equal(socketUrl("/ws/", "https://example.test/"), "wss://example.test/ws/");
    assert.equal(socketUrl("wss://other.test/ws/", "http://example.test/"), "wss://other.test/ws/");
  });
});

describe("Client: the queue", () => {
  it("holds what is sent before the socket opens and sends it in order on open", () => {
    const { client, socket } = makeClient();
    assert.equal(client.send({ n: 1 }), true);
    assert.equal(client.sendRaw("raw"), true);
    client.send([2]);
    assert.deepEqual(socket().sent, []);
    socket().open();
    assert.deepEqual(socket().sent, ['{"n":1}', "raw", "[2]"]);
    client.send("now");
    assert.deepEqual(socket().sent.at(-1), '"now"');
  });

  it("holds binary frames as they are", () => {
    const { client, socket } = makeClient();
    const bytes = new Uint8Array([1, 2, 3]);
    client.sendRaw(bytes.buffer);
    client.sendRaw(bytes);
    socket().open();
    assert.deepEqual(socket().sent, [bytes.buffer, bytes]);
  });

  it("drops with an event when full, and keeps what it holds", () => {
    const { client, socket, of } = makeClient({ maxQueue: 2 });
    assert.deepEqual([1, 2, 3].map((n) => client.send(n)), [true, true, false]);
    assert.deepEqual(of("drop"), [{ data: "3", reason: "full" }]);
    socket().open();
    assert.deepEqual(socket().sent, ["1", "2"]);
  });

  it("holds messages while reconnecting and flushes them on the new socket", () => {
    const { client, clock, made, socket } = makeClient();
    socket().open();
    client.send("before");
    socket().drop(1001);
    client.send("while away 1");
    client.send("while away 2");
    clock.advance(DEFAULTS.maxDelay);
    assert.equal(made.length, 2);
    socket().open();
    assert.deepEqual(made[0].sent, ['"before"']);
    assert.deepEqual(made[1].sent, ['"while away 1"', '"while away 2"']);
  });

  it("does not send on a socket the server is closing", () => {
    const { client, socket } = makeClient();
    socket().open();
    socket().readyState = 2; // a close frame came; the close event has not yet
    client.send("late");
    assert.deepEqual(socket().sent, []);
    assert.equal(client.queue.size, 1);
  });

  it("lets open handlers send before the queue", () => {
    const { client, socket } = makeClient();
    client.send("queued");
    client.on("open", () => client.send("hello first"));
    socket().open();
    assert.deepEqual(socket().sent, ['"hello first"', '"queued"']);
  });
});

describe("Client: reconnects", () => {
  it("waits a backoff delay, says so, and opens a new socket", () => {
    const randoms = [0.5, 0.5, 0.5];
    const { clock, made, socket, of } = makeClient({ randoms });
    socket().open();
    socket().drop(1006);
    assert.deepEqual(of("close").at(-1), { code: 1006, reason: "", wasClean: false, final: false });
    assert.deepEqual(of("reconnecting"), [{ delay: 500, attempt: 1, code: 1006 }]);
    clock.advance(499);
    assert.equal(made.length, 1);
    clock.advance(1);
    assert.equal(made.length, 2);
    socket().drop(1006); // refused again before it opened
    assert.deepEqual(of("reconnecting").at(-1), { delay: 1000, attempt: 2, code: 1006 });
    clock.advance(1000);
    socket().drop(1006);
    assert.deepEqual(of("reconnecting").at(-1), { delay: 2000, attempt: 3, code: 1006 });
  });

  it("starts the delays again after a connection stayed open for stableAfter", () => {
    const { clock, socket, of } = makeClient({ stableAfter: 5000 });
    for (let i = 0; i < 3; i++) {
      socket().drop(1006);
      clock.advance(DEFAULTS.maxDelay);
    }
    assert.equal(of("reconnecting").at(-1).attempt, 3);
    socket().open();
    clock.advance(4999);
    socket().drop(1011); // not yet stable: the schedule goes on
    assert.equal(of("reconnecting").at(-1).attempt, 4);
    clock.advance(DEFAULTS.maxDelay);
    socket().open();
    clock.advance(5000);
    socket().drop(1001);
    assert.deepEqual(of("reconnecting").at(-1), { delay: 500, attempt: 1, code: 1001 });
  });

  it("bounds every delay by maxDelay", () => {
    const { clock, socket, of } = makeClient({ baseDelay: 100, maxDelay: 2000, random: () => 0.999 });
    for (let i = 0; i < 20; i++) {
      socket().drop(1006);
      clock.advance(2000);
    }
    const delays = of("reconnecting").map((r) => r.delay);
    assert.equal(Math.max(...delays), 1998);
    assert.deepEqual(delays.slice(0, 5), [99, 199, 399, 799, 1598]);
  });

  for (const code of [1000, 1008, 4000, 4401]) {
    it(`does not reconnect after a final close (${code}) and drops the queue`, () => {
      const { client, clock, made, socket, of } = makeClient();
      socket().open();
      socket().readyState = 2;
      client.send("unsent");
      socket().drop(code);
      clock.advance(DEFAULTS.maxDelay * 10);
      assert.equal(made.length, 1);
      assert.equal(client.state, "closed");
      assert.deepEqual(of("close"), [{ code, reason: "", wasClean: true, final: true }]);
      assert.deepEqual(of("reconnecting"), []);
      assert.deepEqual(of("drop"), [{ data: '"unsent"', reason: "closed" }]);
      assert.equal(client.send("after"), false);
      assert.deepEqual(of("drop").at(-1), { data: '"after"', reason: "closed" });
    });
  }

  it("stops, saying why, when a new socket cannot even be made", () => {
    const { ScriptedSocket, made } = socketClass();
    let refuse = false;
    class Refusing extends ScriptedSocket {
      constructor(url) {
        if (refuse) throw new Error("refused by the page's policy");
        super(url);
      }
    }
    const clock = new ManualClock();
    const client = new Client("ws://example.test/", { WebSocket: Refusing, clock });
    const events = [];
    client.on("error", ({ error }) => events.push(["error", error.message]));
    client.on("close", ({ final }) => events.push(["close", final]));
    refuse = true;
    made[0].drop(1006);
    clock.advance(DEFAULTS.maxDelay);
    assert.deepEqual(events, [["close", false], ["error", "refused by the page's policy"],
      ["close", true]]);
    assert.equal(client.state, "closed");
    assert.equal(clock.timers.size, 0);
  });

  it("follows shouldReconnect when given", () => {
    const { clock, made, socket } = makeClient({ shouldReconnect: (code) => code === 1000 });
    socket().drop(1000);
    clock.advance(DEFAULTS.maxDelay);
    assert.equal(made.length, 2);
    socket().drop(1006);
    clock.advance(DEFAULTS.maxDelay);
    assert.equal(made.length, 2);
  });

  it("stops for good on close(), also while waiting to reconnect", () => {
    const { client, clock, made, socket, of } = makeClient();
    socket().open();
    socket().drop(1006);
    client.close();
    clock.advance(DEFAULTS.maxDelay * 10);
    assert.equal(made.length, 1);
    assert.equal(of("close").at(-1).final, true);

    const second = makeClient();
    second.socket().open();
    second.client.close(4000, "bye");
    assert.deepEqual(second.socket().closedWith, [4000, "bye"]);
    second.socket().drop(4000);
    second.clock.advance(DEFAULTS.maxDelay);
    assert.equal(second.made.length, 1);
    assert.equal(second.of("close").length, 1);
  });

  it("stops when a close handler calls close()", () => {
    const { client, clock, made, socket, of } = makeClient();
    client.on("close", () => client.close());
    socket().drop(1006);
    clock.advance(DEFAULTS.maxDelay);
    assert.equal(made.length, 1);
    assert.equal(client.state, "closed");
    assert.deepEqual(of("close").map((c) => c.final), [false, true]);
  });
});

describe("Client: messages and streams", () => {
  it("decodes JSON, reports a frame that is not, and passes binary as it came", () => {
    const { socket, of } = makeClient();
    socket().open();
    socket().receive('{"a": [1]}');
    socket().receive("not json");
    const bytes = new Uint8Array([0, 255]).buffer;
    socket().receive(bytes);
    assert.deepEqual(of("message").map((m) => m.data), [{ a: [1] }, bytes]);
    assert.equal(of("error").length, 1);
    assert.equal(of("error")[0].data, "not json");
    assert.ok(of("error")[0].error instanceof SyntaxError);
  });

  it("passes text as it came without json", () => {
    const { client, socket, of } = makeClient({ json: false });
    socket().open();
    client.send("plain");
    socket().receive('{"not": "decoded"}');
    assert.deepEqual(socket().sent, ["plain"]);
    assert.deepEqual(of("message"), [{ data: '{"not": "decoded"}' }]);
  });

  it("carries several streams over one socket, each to its own handlers", () => {
    const { client, socket, of } = makeClient();
    const chat = client.stream("chat");
    const presence = client.stream("presence");
    assert.equal(client.stream("chat"), chat);
    const got = { chat: [], presence: [], errors: [] };
    chat.on("message", ({ payload }) => got.chat.push(payload));
    presence.on("message", ({ payload }) => got.presence.push(payload));
    chat.on("error", ({ error }) => got.errors.push(error));
    chat.send({ text: "hi" });
    socket().open();
    assert.deepEqual(socket().sent.map((f) => JSON.parse(f)), [{ stream: "chat", payload: { text: "hi" } }]);
    socket().receive('{"stream": "presence", "payload": {"joins": ["bob"]}}');
    socket().receive('{"stream": "chat", "payload": "hello"}');
    socket().receive('{"stream": "elsewhere", "payload": 1}');
    socket().receive('{"stream": "chat", "error": "no such stream"}');
    socket().receive('{"stream": "chat"}'); // neither: not a stream's frame
    assert.deepEqual(got, { chat: ["hello"], presence: [{ joins: ["bob"] }], errors: ["no such stream"] });
    assert.equal(of("message").length, 5, "the client sees every frame");
  });

  it("keeps calling handlers after one throws", () => {
    const { client, socket } = makeClient();
    const reported = [];
    const original = globalThis.reportError;
    globalThis.reportError = (error) => reported.push(error.message);
    try {
      const seen = [];
      client.stream("s").on("message", () => { throw new Error("handler bug"); });
      client.stream("s").on("message", ({ payload }) => seen.push(payload));
      socket().open();
      socket().receive('{"stream": "s", "payload": 7}');
      assert.deepEqual(seen, [7]);
      assert.deepEqual(reported, ["handler bug"]);
    } finally {
      globalThis.reportError = original;
    }
  });

  it("refuses events, handlers, stream names and delays that cannot work", () => {
    const { client } = makeClient();
    assert.throws(() => client.on("reconnect", () => {}), /No event "reconnect": there are open, /);
    assert.throws(() => client.stream("s").on("open", () => {}), TypeError);
    assert.throws(() => client.on("open", "not a function"), TypeError);
    for (const name of ["", "s".repeat(MAX_STREAM_NAME + 1), 3, null]) {
      assert.throws(() => client.stream(name), TypeError);
    }
    assert.equal(client.stream("s".repeat(MAX_STREAM_NAME)).name.length, MAX_STREAM_NAME);
    for (const bad of [{ maxDelay: -1 }, { baseDelay: "1000" }, { stableAfter: Infinity }]) {
      assert.throws(() => makeClient(bad), RangeError);
    }
  });

  it("removes a handler with off() or the function on() returns", () => {
    const { client, socket } = makeClient();
    const seen = [];
    const handler = ({ data }) => seen.push(data);
    const stop = client.on("message", handler);
    socket().open();
    socket().receive("1");
    stop();
    socket().receive("2");
    client.on("message", handler);
    client.off("message", handler);
    socket().receive("3");
    assert.deepEqual(seen, [1]);
  });
});
