"""Routing of the chat consumers (as a project's routing.py would be)."""

# docs: start
websocket_routing = {
    "websocket.connect": "tests.testapp.chat.ws_connect",
    "websocket.receive": "tests.testapp.chat.ws_receive",
    "websocket.disconnect": "tests.testapp.chat.ws_disconnect",
}
# docs: end

broken_connect_routing = {
    "websocket.connect": "tests.testapp.consumers.ws_connect_broken",
}
