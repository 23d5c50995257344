// The room page, a module: a channels client on /ws/chat/<room>/, which
// reconnects by itself when the connection drops, and the chat on its
// stream "chat". Each message from the server is one chat message; what
// the user types goes out as {"text": ...}.
import { connect } from "channels";

const list = document.getElementById("messages");
const status = document.getElementById("status");
const form = document.getElementById("send-form");
const input = document.getElementById("text");
const seen = new Set();

// Exported: the page's other modules use other streams of the same socket
// (import { client } from "./chat.js").
export const client = connect(list.dataset.socketPath);
const chat = client.stream("chat");

client.on("open", () => { status.textContent = "Connected"; });
client.on("reconnecting", ({ delay }) => {
  status.textContent = `Reconnecting in ${(delay / 1000).toFixed(1)} s…`;
});
client.on("close", ({ final }) => {
  if (final) { status.textContent = "Disconnected (reload to reconnect)"; }
});

chat.on("message", ({ payload: message }) => {
  // History comes on each (re)connect, and news may come with it.
  if (seen.has(message.id)) { return; }
  seen.add(message.id);
  const item = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = message.user + ": ";
  item.append(who, message.text);
  item.title = message.sent;
  list.append(item);
  item.scrollIntoView();
});

form.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = input.value.trim();
  // While the socket is down, it waits in the client's queue.
  if (text && chat.send({ text })) { input.value = ""; }
});
