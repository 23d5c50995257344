// Who is online in the room: keeps the list #online up to date from the
// presence messages of the room's socket, which the page's script hands
// on as "chat:presence" events. A state replaces the list; a diff changes
// it, unless it is older than what the list already shows (diffs from
// several workers may arrive out of order).
(function () {
  "use strict";
  var list = document.getElementById("online");
  var members = new Map();  // user's key -> {meta, connections}
  var versions = new Map(); // user's key -> version of its last change
  var base = 0;             // version of the last state

  function change(key, version, member) {
    if (version <= (versions.get(key) || base)) { return; }
    versions.set(key, version);
    if (member) { members.set(key, member); } else { members.delete(key); }
  }

  function show() {
    var shown = Array.from(members.values()).sort(function (a, b) {
      return a.meta.name.localeCompare(b.meta.name);
    });
    list.replaceChildren.apply(list, shown.map(function (member) {
      var item = document.createElement("li");
      item.textContent = member.meta.name +
        (member.connections > 1 ? " (" + member.connections + " tabs)" : "");
      return item;
    }));
  }

  document.addEventListener("chat:presence", function (event) {
    var message = event.detail;
    if (message.event === "state" && message.version >= base) {
      base = message.version;
      members = new Map(Object.entries(message.members));
      versions.clear();
    } else if (message.event === "diff") {
      [message.joins, message.updates].forEach(function (members) {
        Object.keys(members).forEach(function (key) {
          change(key, message.version, members[key]);
        });
      });
      Object.keys(message.leaves).forEach(function (key) {
        change(key, message.version, null);
      });
    }
    show();
  });
})();
