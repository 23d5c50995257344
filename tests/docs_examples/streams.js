// docs/client.rst: a page's side of tests/docs_examples/streams.py, both
// streams on one socket. (connect comes from channels/client.js; show is
// the page's own.) tests/test_client_browser.py runs it in Chromium.
const client = connect("/ws/streams/");
const echo = client.stream("echo");
const count = client.stream("count");
echo.on("message", ({ payload }) => show("echo", payload));
count.on("message", ({ payload }) => show("count", payload));
client.stream("nowhere").on("error", ({ error }) => show("nowhere", error));
// Sent before the socket is open: held, then sent in this order.
echo.send({ a: [1, "b"] });
count.send("x");
client.stream("nowhere").send(1);
echo.send("y");
count.send("z");
