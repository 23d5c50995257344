"""Which consumer runs for each channel (CHANNEL_BACKENDS' ROUTING): the
guide's routing (docs/guide/mysite/routing.py), with the WebSocket channels
shared with the echo endpoint."""

channel_routing = {
    "websocket.connect": "testproject.consumers.websocket",
    "websocket.receive": "testproject.consumers.websocket",
    "websocket.keepalive": "testproject.consumers.websocket",
    "websocket.disconnect": "testproject.consumers.websocket",
    "chat.messages": "chat.consumers.save_message",
}
