"""An HTTP client that speaks the message standard directly to a backend,
as an interface server does, for tests of the consumers behind one."""

from typing import NamedTuple

from channels.messages.http import (
    request_message,
    response_chunk,
    response_start,
    split_body,
)
from channels.names import new_name


class Response(NamedTuple):
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    messages: list[dict]

    def header(self, name):
        return [value for key, value in self.headers if key.lower() == name.lower()]


def send_request(backend, method, target, body=b"", headers=(), scheme="http",
                 channel="http.request", root_path=""):
    """Send an ``http.request`` (and its body chunks); return its reply channel."""
    reply = new_name("!http.response")
    first, rest = split_body(body)
    body_channel = new_name("http.request.body") if rest else None
    raw_headers = [(b"host", b"testserver"), *headers]
    if body:
        raw_headers.append((b"content-length", str(len(body)).encode()))
    backend.send(channel, request_message(
        target, raw_headers, ("127.0.0.1", 50000), ("127.0.0.1", 80), scheme,
        reply_channel=reply, method=method, http_version="1.1", body=first,
        body_channel=body_channel, root_path=root_path,
    ))
    for message in rest:
        backend.send(body_channel, message)
    return reply


def read_response(backend, reply, timeout=5):
    """Collect the whole response sent to ``reply``; every message is
    validated as an interface server would."""
    _, message = backend.receive_many_blocking([reply], timeout)
    assert message is not None, "no response"
    start = response_start(message)
    messages, body, more = [message], [start.content], start.more_content
    while more:
        _, message = backend.receive_many_blocking([reply], timeout)
        assert message is not None, "response stopped before its last chunk"
        chunk = response_chunk(message)
        messages.append(message)
        body.append(chunk.content)
        more = chunk.more_content
    headers = [(name.decode("latin-1"), value.decode("latin-1"))
               for name, value in start.headers]
    return Response(start.status, start.reason, headers, b"".join(body), messages)
