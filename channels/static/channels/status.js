// The status page of channels (channels/status/views.py): polls the JSON
// report every few seconds, keeps the last minutes of it here in the
// browser, and draws them as inline SVG. No library, no build step.
//
// Messages per second and consumer time come from differences between two
// reports of the same worker (by id): "handled" counts the consumers it ran,
// "busy" the seconds they took, so their ratio is the mean over the poll.

const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
// Chart geometry, in viewBox units: the plot's box inside the SVG.
const BOX = { width: 320, height: 130, left: 34, right: 6, top: 8, bottom: 18 };
const MAX_DEPTH_SERIES = COLOURS.length;

const root = document.getElementById("channels-status");
const every = Number(root.dataset.every) * 1000;
const history = Number(root.dataset.history);
const samples = [];
let previous = null;

function element(tag, attributes = {}, text = null) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS(SVG, tag.slice(4))
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== null) node.textContent = text;
  return node;
}

// What changed since the last report: messages handled per second (and
// errors), and the mean consumer time over the poll, in milliseconds.
function rates(before, now) {
  if (!before) return { rate: null, errors: null, mean: null };
  const elapsed = now.time - before.time;
  const earlier = new Map(before.workers.map((worker) => [worker.id, worker]));
  let handled = 0;
  let errors = 0;
  let busy = 0;
  for (const worker of now.workers) {
    const last = earlier.get(worker.id);
    if (!last || worker.handled < last.handled) continue; // new, or restarted
    handled += worker.handled - last.handled;
    errors += Math.max(worker.errors - last.errors, 0);
    busy += Math.max((worker.busy || 0) - (last.busy || 0), 0);
  }
  if (!(elapsed > 0)) return { rate: null, errors: null, mean: null };
  return {
    rate: handled / elapsed,
    errors: errors / elapsed,
    mean: handled ? (busy / handled) * 1000 : null,
  };
}

function record(report) {
  const depth = {};
  for (const channel of report.channels) depth[channel.name] = channel.total;
  const slowest = Math.max(0, ...report.workers.map((worker) => worker.slowest || 0));
  samples.push({ time: report.time, depth, slowest: slowest * 1000, ...rates(previous, report) });
  while (samples.length && samples[0].time < report.time - history) samples.shift();
  previous = report;
}

function niceMaximum(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  const step = [1, 2, 5, 10].find((factor) => factor * power >= value);
  return step * power;
}

function label(value) {
  return value >= 100 || Number.isInteger(value) ? String(Math.round(value)) : value.toFixed(1);
}

// series: [{name, values: [value or null per sample]}]
function draw(id, series) {
  const svg = document.getElementById(id);
  const legend = document.getElementById(id.replace("chart", "legend"));
  svg.replaceChildren();
  legend.replaceChildren();
  const now = samples.length ? samples[samples.length - 1].time : 0;
  // The time shown: since the first report, until that is the whole history.
  const span = Math.min(history, Math.max(now - (samples.length ? samples[0].time : now), every / 1000));
  const all = series.flatMap((line) => line.values).filter((value) => value !== null);
  const top = niceMaximum(Math.max(0, ...all));
  const width = BOX.width - BOX.left - BOX.right;
  const height = BOX.height - BOX.top - BOX.bottom;
  const x = (time) => BOX.left + width * (1 - (now - time) / span);
  const y = (value) => BOX.top + height * (1 - value / top);
  const bottom = BOX.top + height;
  svg.append(
    element("svg:line", { class: "axis", x1: BOX.left, y1: bottom, x2: BOX.width - BOX.right, y2: bottom }),
    element("svg:line", { class: "axis", x1: BOX.left, y1: BOX.top, x2: BOX.left, y2: bottom }),
    element("svg:text", { x: BOX.left - 3, y: BOX.top + 7, "text-anchor": "end" }, label(top)),
    element("svg:text", { x: BOX.left - 3, y: bottom, "text-anchor": "end" }, "0"),
    element("svg:text", { x: BOX.left, y: BOX.height - 4 },
            span < 120 ? `${Math.round(span)} s ago` : `${Math.round(span / 60)} min ago`),
    element("svg:text", { x: BOX.width - BOX.right, y: BOX.height - 4, "text-anchor": "end" }, "now"),
  );
  series.forEach((line, index) => {
    const colour = COLOURS[index % COLOURS.length];
    let d = "";
    let pen = "M";
    line.values.forEach((value, at) => {
      if (value === null) {
        pen = "M";
        return;
      }
      d += `${pen}${x(samples[at].time).toFixed(1)},${y(value).toFixed(1)}`;
      pen = "L";
    });
    const points = line.values.filter((value) => value !== null);
    svg.append(element("svg:path", { d, stroke: colour, "data-series": line.name,
                                      "data-points": points.length }));
    const last = points.length ? label(points[points.length - 1]) : "–";
    const item = element("li");
    const swatch = element("span", { class: "swatch" });
    swatch.style.background = colour; // through the CSSOM: allowed under a CSP
    item.append(swatch, `${line.name}: ${last}`);
    legend.append(item);
  });
  svg.dataset.points = Math.max(0, ...series.map((line) => line.values.filter((v) => v !== null).length));
  const lastValues = series.map((line) => line.values[line.values.length - 1]);
  svg.dataset.last = JSON.stringify(lastValues);
}

function charts() {
  // The channels that held messages in the period shown, busiest first;
  // all of them together while none has.
  const peaks = new Map();
  for (const sample of samples) {
    for (const [name, depth] of Object.entries(sample.depth)) {
      if (depth > 0) peaks.set(name, Math.max(peaks.get(name) || 0, depth));
    }
  }
  const busiest = [...peaks.entries()].sort((a, b) => b[1] - a[1]).slice(0, MAX_DEPTH_SERIES);
  const depthSeries = busiest.length
    ? busiest.map(([name]) => ({ name, values: samples.map((s) => s.depth[name] ?? 0) }))
    : [{ name: "all channels", values: samples.map((s) => Object.values(s.depth).reduce((a, b) => a + b, 0)) }];
  draw("chart-depth", depthSeries);
  draw("chart-rate", [
    { name: "handled/s", values: samples.map((s) => s.rate) },
    { name: "errors/s", values: samples.map((s) => s.errors) },
  ]);
  draw("chart-latency", [
    { name: "mean", values: samples.map((s) => s.mean) },
    { name: "slowest", values: samples.map((s) => s.slowest) },
  ]);
}

function fill(id, headings, rows) {
  const table = document.getElementById(id);
  table.replaceChildren();
  const head = element("tr");
  for (const heading of headings) head.append(element("th", {}, heading));
  table.append(head);
  for (const row of rows) {
    const line = element("tr");
    for (const cell of row) {
      const shown = cell === null || cell === undefined ? "–" : cell;
      const attributes = typeof cell === "number" ? { class: "number" } : {};
      line.append(element("td", attributes, String(shown)));
    }
    table.append(line);
  }
}

function ago(seconds) {
  return seconds === null ? null : `${Math.max(seconds, 0).toFixed(1)} s ago`;
}

function tables(report) {
  document.getElementById("backend-class").textContent = `(${report.backend})`;
  fill("shards", ["#", "address", "state", "memory (MiB)", "round trip (ms)", "groups", "replies waiting"],
    report.shards.map((shard, index) => [
      index, shard.address, shard.up ? "up" : `DOWN: ${shard.error}`,
      shard.used_memory === null ? null : Number((shard.used_memory / 1048576).toFixed(1)),
      shard.round_trip === null ? null : Number((shard.round_trip * 1000).toFixed(2)),
      shard.groups, shard.replies_waiting,
    ]));
  document.querySelectorAll("#shards td").forEach((cell) => {
    if (cell.textContent.startsWith("DOWN")) cell.classList.add("down");
  });
  const perShard = report.shards.length > 1 ? report.shards.map((_, index) => `#${index}`) : [];
  fill("channels", ["channel", "waiting", ...perShard, "capacity per shard"],
    report.channels.map((channel) => [channel.name, channel.total,
      ...(perShard.length ? channel.depth : []), channel.capacity]));
  document.getElementById("groups").textContent = `Groups: ${report.groups ?? "–"}`;
  fill("workers", ["id", "host", "pid", "threads", "handled", "errors", "slowest (ms)", "last heartbeat", "channels"],
    report.workers.map((worker) => [worker.id, worker.host, worker.pid, worker.threads, worker.handled,
      worker.errors, Number(((worker.slowest || 0) * 1000).toFixed(1)), ago(worker.age),
      (worker.channels || []).join(", ")]));
  fill("interface-servers", ["id", "host", "pid", "http", "websocket", "last heartbeat"],
    report.interface_servers.map((server) => [server.id, server.host, server.pid,
      server.connections?.http ?? null, server.connections?.websocket ?? null, ago(server.age)]));
  const notes = document.getElementById("notes");
  notes.replaceChildren(...report.notes.map((note) => element("li", {}, note)));
}

function state(name, text) {
  const node = document.getElementById("state");
  node.dataset.state = name;
  node.textContent = text;
}

async function poll() {
  try {
    const response = await fetch(root.dataset.url, {
      headers: { Accept: "application/json" },
      credentials: "same-origin",
    });
    if (!response.ok) throw new Error(`${response.status} ${response.statusText}`);
    const report = await response.json();
    record(report);
    charts();
    tables(report);
    state("live", `Updated ${new Date(report.time * 1000).toLocaleTimeString()}.`);
  } catch (error) {
    state("error", `Could not read the status (${error.message}); retrying.`);
  } finally {
    setTimeout(poll, every);
  }
}

poll();
