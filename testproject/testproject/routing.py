channel_routing = {
    "websocket.receive": "testproject.consumers.ws_receive",
}
