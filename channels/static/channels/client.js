/**
 * The browser side of channels: a WebSocket that reconnects by itself,
 * carries JSON by default, holds what is sent while it is down, and carries
 * several logical streams over one socket. One ES module, no build step and
 * no dependencies: load it from a ``<script type="module">`` (docs/client.rst).
 *
 * Delivery is at most once, as on the channel layer: a frame sent just
 * before a connection drops may be lost, and the server does not replay
 * what was sent to a socket while it was away.
 *
 * @module channels/client
 */

/** The options a {@link Client} takes, and their defaults. */
export const DEFAULTS = Object.freeze({
  /** Ceiling of the first reconnect delay, in ms; it doubles each attempt. */
  baseDelay: 1000,
  /** The largest ceiling of a reconnect delay, in ms. */
  maxDelay: 30000,
  /** How long a connection must stay open, in ms, before the delays start
   * from ``baseDelay`` again: a server that accepts and then drops every
   * connection is not retried at full speed. */
  stableAfter: 5000,
  /** How many messages are held while the socket is not open. */
  maxQueue: 100,
  /** Encode what ``send`` gets as JSON, and decode text frames as JSON. */
  json: true,
});

/** The longest stream name the server takes (channels.messages.streams.MAX_STREAM_NAME). */
export const MAX_STREAM_NAME = 100;

const OPEN = 1; // WebSocket.OPEN, also where the WebSocket class is absent (tests)

/**
 * Whether a close code means the server wants this client gone for good, so
 * that reconnecting would only repeat it: 1000 (the application closed the
 * socket: a consumer sent ``{"close": True}``), 1008 (policy violation) and
 * 4000-4999 (codes an application chooses). Every other close reconnects:
 * 1001 (the server is restarting or going away), 1006 (the connection
 * dropped, or the handshake was refused: browsers do not tell the two
 * apart), 1011, 1012, 1013 (a failure or overload on the server's side),
 * 1009 (a frame too large: that frame is not sent again) and the rest.
 *
 * @param {number} code The close event's code.
 * @returns {boolean}
 */
export function isFinalClose(code) {
  return code === 1000 || code === 1008 || (code >= 4000 && code <= 4999);
}

/**
 * The delay before reconnect attempt ``attempt`` (0 for the first), in ms:
 * exponential backoff with full jitter, a random delay between 0 and
 * ``min(maxDelay, baseDelay * 2 ** attempt)``, so that the clients of a
 * restarted server spread their reconnects rather than arrive together.
 *
 * @param {number} attempt
 * @param {{baseDelay: number, maxDelay: number}} limits
 * @param {() => number} [random] A number in [0, 1), like Math.random.
 * @returns {number}
 */
export function backoffDelay(attempt, { baseDelay, maxDelay }, random = Math.random) {
  const ceiling = Math.min(maxDelay, baseDelay * 2 ** Math.min(attempt, 52));
  return Math.floor(random() * ceiling);
}

/**
 * The messages sent while the socket is not open, oldest first, at most
 * ``limit`` of them.
 */
export class SendQueue {
  /** @param {number} limit */
  constructor(limit) {
    if (!(Number.isInteger(limit) && limit >= 0)) {
      throw new RangeError(`maxQueue must be an integer >= 0, not ${limit}`);
    }
    this.limit = limit;
    /** @type {Array<string|ArrayBuffer|Blob|ArrayBufferView>} */
    this.items = [];
  }

  /** Add ``frame`` at the end; false (and nothing added) when full. */
  push(frame) {
    if (this.items.length >= this.limit) {
      return false;
    }
    this.items.push(frame);
    return true;
  }

  /** Take every frame, oldest first, leaving the queue empty. */
  drain() {
    const items = this.items;
    this.items = [];
    return items;
  }

  get size() {
    return this.items.length;
  }
}

/** Handlers by event type, each called with one argument. */
class Emitter {
  /** @param {string[]} types The events there are: a typo throws. */
  constructor(types) {
    /** @type {Map<string, Set<Function>>} */
    this.handlers = new Map(types.map((type) => [type, new Set()]));
  }

  /**
   * Call ``handler(detail)`` on each event of ``type``.
   * @param {string} type
   * @param {(detail: object) => void} handler
   * @returns {() => void} A function that removes the handler.
   */
  on(type, handler) {
    if (!this.handlers.has(type)) {
      throw new TypeError(`No event ${JSON.stringify(type)}: there are ${[...this.handlers.keys()].join(", ")}`);
    }
    if (typeof handler !== "function") {
      throw new TypeError(`The handler of ${type} must be a function, not ${handler}`);
    }
    this.handlers.get(type).add(handler);
    return () => this.off(type, handler);
  }

  /** Stop calling ``handler`` for ``type``. */
  off(type, handler) {
    this.handlers.get(type)?.delete(handler);
  }

  /** A handler that throws is reported and does not stop the others. */
  emit(type, detail) {
    for (const handler of [...(this.handlers.get(type) ?? [])]) {
      try {
        handler(detail);
      } catch (error) {
        (globalThis.reportError ?? console.error)(error);
      }
    }
  }
}

/**
 * One logical stream of a {@link Client}: frames ``{"stream": name,
 * "payload": ...}`` both ways. Made by {@link Client#stream}. Its events:
 * ``message`` (``{payload}``) and ``error`` (``{error}``: the server
 * refused a frame sent on this stream).
 */
export class Stream extends Emitter {
  /** @param {Client} client @param {string} name */
  constructor(client, name) {
    super(["message", "error"]);
    this.client = client;
    this.name = name;
  }

  /**
   * Send ``payload`` (anything JSON can encode) on this stream.
   * @returns {boolean} As {@link Client#send}.
   */
  send(payload) {
    return this.client.send({ stream: this.name, payload });
  }
}

/**
 * A frame is a stream's when it is an object with a string ``stream`` and
 * a ``payload`` (or, from the server, an ``error``).
 */
function isEnvelope(value) {
  return value !== null && typeof value === "object" && typeof value.stream === "string"
    && ("payload" in value || "error" in value);
}

/**
 * ``path`` as a WebSocket URL: absolute ``ws:``/``wss:`` URLs as they are,
 * anything else relative to ``base`` (the page's address), with ``wss:``
 * for an ``https:`` page.
 */
export function socketUrl(path, base = globalThis.location?.href) {
  const url = new URL(path, base);
  if (url.protocol === "http:" || url.protocol === "https:") {
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  }
  return url.href;
}

/**
 * A WebSocket client that reconnects. It connects as soon as it is made.
 *
 * Events (``client.on(type, handler)``, each handler gets one object):
 *
 * - ``open`` ``{}``: connected. Handlers run before the queued messages are
 *   sent, so what they send (a subscription, say) goes first.
 * - ``message`` ``{data}``: every frame: with ``json`` (the default) a
 *   text frame decoded, a binary frame as an ArrayBuffer; without, as it came.
 *   A stream's frames also go to that {@link Stream}'s handlers.
 * - ``close`` ``{code, reason, wasClean, final}``: the socket closed;
 *   ``final`` when it will not reconnect (see {@link isFinalClose}, or
 *   {@link Client#close} was called).
 * - ``reconnecting`` ``{delay, attempt, code}``: the next attempt starts in
 *   ``delay`` ms; ``attempt`` counts from 1 since the last stable connection.
 * - ``error`` ``{error, data?}``: the socket reported an error (browsers say
 *   no more; a close follows), or a text frame was not JSON (``data``).
 * - ``drop`` ``{data, reason}``: a message was not sent: the queue was full
 *   (``"full"``) or the client is closed (``"closed"``).
 */
export class Client extends Emitter {
  /**
   * @param {string} url A ws:/wss: URL, or a path on the page's server.
   * @param {object} [options] {@link DEFAULTS}, and:
   * @param {string|string[]} [options.protocols] Subprotocols to offer.
   * @param {(code: number, reason: string) => boolean} [options.shouldReconnect]
   *   Whether to reconnect after a close; the default is ``!isFinalClose(code)``.
   * @param {typeof WebSocket} [options.WebSocket] The WebSocket class to use.
   * @param {{setTimeout: Function, clearTimeout: Function}} [options.clock]
   *   Where timers come from (globalThis by default); tests pass their own.
   * @param {() => number} [options.random] Math.random by default.
   */
  constructor(url, options = {}) {
    super(["open", "message", "close", "reconnecting", "error", "drop"]);
    this.url = socketUrl(url);
    this.options = { ...DEFAULTS, ...options };
    for (const name of ["baseDelay", "maxDelay", "stableAfter"]) {
      const value = this.options[name];
      if (!(typeof value === "number" && value >= 0 && Number.isFinite(value))) {
        throw new RangeError(`${name} must be a number of ms >= 0, not ${value}`);
      }
    }
    this.queue = new SendQueue(this.options.maxQueue);
    this.shouldReconnect = options.shouldReconnect ?? ((code) => !isFinalClose(code));
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket;
    this.clock = options.clock ?? globalThis;
    this.random = options.random ?? Math.random;
    /** @type {Map<string, Stream>} */
    this.streams = new Map();
    /** ``"connecting"``, ``"open"``, ``"waiting"`` (to reconnect) or ``"closed"``. */
    this.state = "connecting";
    this.attempt = 0;
    this.socket = null;
    this.retryTimer = null;
    this.stableTimer = null;
    this.#connect();
  }

  /**
   * The {@link Stream} called ``name`` (the same object each time).
   * @param {string} name 1 to {@link MAX_STREAM_NAME} characters.
   */
  stream(name) {
    if (!(typeof name === "string" && name.length > 0 && name.length <= MAX_STREAM_NAME)) {
      throw new TypeError(`A stream name is a string of 1 to ${MAX_STREAM_NAME} characters, not ${name}`);
    }
    if (!this.streams.has(name)) {
      this.streams.set(name, new Stream(this, name));
    }
    return this.streams.get(name);
  }

  /**
   * Send ``value``, encoded as JSON (as it is, without ``json``). While the
   * socket is not open it waits in the queue, to be sent in order once it
   * is. Throws what JSON.stringify throws.
   * @returns {boolean} False when it was dropped (a ``drop`` event says why).
   */
  send(value) {
    return this.sendRaw(this.options.json ? JSON.stringify(value) : value);
  }

  /**
   * Send a text (string) or binary (ArrayBuffer, Blob, typed array) frame as
   * it is, queued like {@link Client#send}.
   * @returns {boolean}
   */
  sendRaw(data) {
    if (this.state === "closed") {
      this.emit("drop", { data, reason: "closed" });
      return false;
    }
    // A socket the server is closing takes frames and discards them: only
    // an open one gets them.
    if (this.socket !== null && this.socket.readyState === OPEN) {
      this.socket.send(data);
      return true;
    }
    if (!this.queue.push(data)) {
      this.emit("drop", { data, reason: "full" });
      return false;
    }
    return true;
  }

  /**
   * Close for good: no reconnect, and queued messages are dropped.
   * @param {number} [code] 1000, or 3000-4999.
   * @param {string} [reason]
   */
  close(code = 1000, reason = "") {
    if (this.state === "closed") {
      return;
    }
    this.state = "closed";
    this.#clearTimers();
    const socket = this.socket;
    if (socket !== null) {
      socket.close(code, reason); // its close event finishes the job
    } else {
      this.#finish({ code, reason, wasClean: true });
    }
  }

  /** Open a socket (done by the constructor, and by each reconnect). */
  #connect() {
    const socket = new this.WebSocket(this.url, this.options.protocols);
    socket.binaryType = "arraybuffer";
    this.socket = socket;
    this.state = "connecting";
    socket.onopen = () => this.#opened(socket);
    socket.onmessage = (event) => this.#received(event.data);
    socket.onerror = (event) => this.emit("error", { error: event });
    socket.onclose = (event) => this.#closed(socket, event);
  }

  #opened(socket) {
    if (socket !== this.socket) {
      return;
    }
    this.state = "open";
    this.stableTimer = this.clock.setTimeout(() => {
      this.stableTimer = null;
      this.attempt = 0;
    }, this.options.stableAfter);
    this.emit("open", {});
    if (this.socket === socket && socket.readyState === OPEN) {
      for (const data of this.queue.drain()) {
        socket.send(data);
      }
    }
  }

  #received(data) {
    if (!this.options.json || typeof data !== "string") {
      this.emit("message", { data });
      return;
    }
    let value;
    try {
      value = JSON.parse(data);
    } catch (error) {
      this.emit("error", { error, data });
      return;
    }
    this.emit("message", { data: value });
    if (isEnvelope(value)) {
      const stream = this.streams.get(value.stream);
      if ("error" in value) {
        stream?.emit("error", { error: value.error });
      } else {
        stream?.emit("message", { payload: value.payload });
      }
    }
  }

  #closed(socket, { code, reason, wasClean }) {
    if (socket !== this.socket) {
      return;
    }
    this.socket = null;
    this.#clearTimers();
    if (this.state === "closed" || !this.shouldReconnect(code, reason)) {
      this.#finish({ code, reason, wasClean });
      return;
    }
    this.emit("close", { code, reason, wasClean, final: false });
    if (this.state === "closed") {
      return; // a close handler called close()
    }
    const delay = backoffDelay(this.attempt, this.options, this.random);
    this.attempt += 1;
    this.state = "waiting";
    this.retryTimer = this.clock.setTimeout(() => {
      this.retryTimer = null;
      try {
        this.#connect();
      } catch (error) {
        // The URL worked before; a page that forbids it now (a changed
        // Content-Security-Policy, say) cannot be retried into working.
        this.emit("error", { error });
        this.#finish({ code: 1006, reason: String(error), wasClean: false });
      }
    }, delay);
    this.emit("reconnecting", { delay, attempt: this.attempt, code });
  }

  /** The final close: what is queued will never be sent. */
  #finish({ code, reason, wasClean }) {
    this.state = "closed";
    this.#clearTimers();
    this.emit("close", { code, reason, wasClean, final: true });
    for (const data of this.queue.drain()) {
      this.emit("drop", { data, reason: "closed" });
    }
  }

  #clearTimers() {
    for (const name of ["retryTimer", "stableTimer"]) {
      if (this[name] !== null) {
        this.clock.clearTimeout(this[name]);
        this[name] = null;
      }
    }
  }
}

/**
 * A {@link Client} on ``url`` (a path on the page's server, or a ws:/wss: URL).
 * @param {string} url
 * @param {object} [options] See {@link Client}.
 * @returns {Client}
 */
export function connect(url, options) {
  return new Client(url, options);
}
