// Who is online in the room, a module: keeps the list #online from the
// stream "presence" of the page's socket (chat.js's client). A state
// replaces the list; a diff changes it, unless it is older than what the
// list already shows (diffs from several workers may arrive out of order).
import { client } from "./chat.js";

const list = document.getElementById("online");
let members = new Map();    // user's key -> {meta, connections}
const versions = new Map(); // user's key -> version of its last change
let base = 0;               // version of the last state

function change(key, version, member) {
  if (version <= (versions.get(key) || base)) { return; }
  versions.set(key, version);
  if (member) { members.set(key, member); } else { members.delete(key); }
}

function show() {
  const shown = [...members.values()].sort((a, b) => a.meta.name.localeCompare(b.meta.name));
  list.replaceChildren(...shown.map((member) => {
    const item = document.createElement("li");
    item.textContent = member.meta.name +
      (member.connections > 1 ? ` (${member.connections} tabs)` : "");
    return item;
  }));
}

client.stream("presence").on("message", ({ payload: message }) => {
  if (message.event === "state" && message.version >= base) {
    base = message.version;
    members = new Map(Object.entries(message.members));
    versions.clear();
  } else if (message.event === "diff") {
    for (const changed of [message.joins, message.updates]) {
      for (const [key, member] of Object.entries(changed)) {
        change(key, message.version, member);
      }
    }
    for (const key of Object.keys(message.leaves)) { change(key, message.version, null); }
  }
  show();
});
