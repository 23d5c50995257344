// The room page: one WebSocket to /ws/chat/<room>/. Each frame from the
// server is one message as JSON (or, with a "stream", one for another
// script of the page: "chat:<stream>" events); what the user types is
// sent as text.
(function () {
  "use strict";
  var script = document.currentScript;
  var list = document.getElementById("messages");
  var status = document.getElementById("status");
  var form = document.getElementById("send-form");
  var input = document.getElementById("text");
  var seen = new Set();

  var scheme = location.protocol === "https:" ? "wss://" : "ws://";
  var socket = new WebSocket(scheme + location.host + script.dataset.socketPath);

  socket.onopen = function () { status.textContent = "Connected"; };
  socket.onclose = function () { status.textContent = "Disconnected (reload to reconnect)"; };
  socket.onmessage = function (event) {
    var message = JSON.parse(event.data);
    if (message.stream) {
      document.dispatchEvent(new CustomEvent("chat:" + message.stream, {detail: message.payload}));
      return;
    }
    if (seen.has(message.id)) { return; }  // sent as history and as news
    seen.add(message.id);
    var item = document.createElement("li");
    var who = document.createElement("b");
    who.textContent = message.user + ": ";
    item.appendChild(who);
    item.appendChild(document.createTextNode(message.text));
    item.title = message.sent;
    list.appendChild(item);
    item.scrollIntoView();
  };

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (input.value.trim() && socket.readyState === WebSocket.OPEN) {
      socket.send(input.value);
      input.value = "";
    }
  });
})();
