"""A chat-like routing for the websocket consumers of consumers.py."""

websocket_routing = {
    "websocket.connect": "channels.tests.testapp.consumers.ws_connect",
    "websocket.receive": "channels.tests.testapp.consumers.ws_receive",
    "websocket.disconnect": "channels.tests.testapp.consumers.ws_disconnect",
}

broken_connect_routing = {
    "websocket.connect": "channels.tests.testapp.consumers.ws_connect_broken",
}
