"""The consumers shown in README.rst (test_docs_examples checks that the
README shows exactly this code)."""

# docs: start
# myapp/consumers.py
from channels import Group
from channels.decorators import consumer


@consumer("websocket.connect")
def ws_connect(message):
    Group("chat").add(message.reply_channel)


@consumer("websocket.receive")
def ws_receive(message):
    Group("chat").send({"text": message["text"]})
# docs: end
