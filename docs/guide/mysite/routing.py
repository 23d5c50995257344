"""Which consumer runs for each channel: the ROUTING of CHANNEL_BACKENDS."""

channel_routing = {
    "websocket.connect": "chat.consumers.chat_connect",
    "websocket.receive": "chat.consumers.chat_receive",
    "websocket.keepalive": "chat.consumers.chat_keepalive",
    "websocket.disconnect": "chat.consumers.chat_disconnect",
    "chat.messages": "chat.consumers.save_message",
}
