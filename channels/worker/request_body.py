"""The body of an ``http.request`` as a file a Django request reads.

A body larger than one message arrives in chunks on its body channel
(docs/message-standards.rst). Reading it as a stream, a chunk at a time
when the view asks for more, keeps a 20 MB upload out of the worker's
memory: Django's upload handlers write it to disk as it comes.
"""

from __future__ import annotations

import io

from django.core.exceptions import RequestAborted

from channels.backends.base import BaseChannelBackend
from channels.messages.http import BODY_CHUNK_SIZE, MalformedBody, body_chunk


class _ChunkReader(io.RawIOBase):
    def __init__(self, first: bytes, body_channel: str | None,
                 backend: BaseChannelBackend, timeout: float):
        self._chunk = memoryview(first)
        self._pos = 0
        self._channel = body_channel  # None once the last chunk is in hand
        self._backend = backend
        self._timeout = timeout

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while self._pos >= len(self._chunk):
            if self._channel is None:
                return 0
            self._next_chunk()
        size = min(len(buffer), len(self._chunk) - self._pos)
        buffer[:size] = self._chunk[self._pos:self._pos + size]
        self._pos += size
        return size

    def _next_chunk(self) -> None:
        channel, message = self._backend.receive_many_blocking([self._channel], self._timeout)
        if channel is None:
            raise RequestAborted(
                f"No request body chunk on {self._channel!r} within {self._timeout} s"
            )
        try:
            chunk = body_chunk(message)
        except MalformedBody:
            raise RequestAborted(
                f"Malformed http.request.body message on {self._channel!r}") from None
        if chunk.closed:
            raise RequestAborted("The client went away during the upload")
        self._chunk, self._pos = memoryview(chunk.content), 0
        if not chunk.more_content:
            self._channel = None


def request_body(first: bytes, body_channel: str | None, backend: BaseChannelBackend,
                 timeout: float) -> io.BufferedIOBase:
    """A readable binary file of the whole body: ``first``, then the chunks
    that follow on ``body_channel`` (if any), each awaited at most
    ``timeout`` seconds. A missing chunk or a client gone mid-upload raises
    ``RequestAborted`` in the reader."""
    if body_channel is None:
        return io.BytesIO(first)  # the usual case: no 512 KiB buffer to set up
    return io.BufferedReader(_ChunkReader(first, body_channel, backend, timeout),
                             buffer_size=BODY_CHUNK_SIZE)
