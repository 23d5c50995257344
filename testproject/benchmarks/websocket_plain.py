"""The baseline: a plain Autobahn/Twisted echo server, no channel layer.

    python websocket_plain.py PORT

Echoes every message; a text message "broadcast:<payload>" instead goes to
every open connection (the broadcast baseline).
"""

import sys

from autobahn.twisted.websocket import WebSocketServerFactory, WebSocketServerProtocol
from twisted.internet import reactor

OPEN = set()


class Echo(WebSocketServerProtocol):
    def onOpen(self):
        OPEN.add(self)

    def onMessage(self, payload, isBinary):
        if payload.startswith(b"broadcast:"):
            for protocol in OPEN:
                protocol.sendMessage(payload[10:], isBinary)
        else:
            self.sendMessage(payload, isBinary)

    def onClose(self, wasClean, code, reason):
        OPEN.discard(self)


factory = WebSocketServerFactory()
factory.protocol = Echo
factory.setProtocolOptions(tcpNoDelay=True)
port = reactor.listenTCP(int(sys.argv[1]), factory, backlog=1024, interface="127.0.0.1")
print(f"listening {port.getHost().port}", flush=True)
reactor.run()
