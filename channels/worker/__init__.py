"""The worker side: the loop that runs consumers (``loop``), Django's request
handling as a consumer (``handler``, ``request_body``, ``sending``), and a
view in front of a channel (``views``, which waits for responses through
``channels.replies``, as the WSGI adapter does). Nothing here imports
``channels.interfaces``: the two sides meet only in ``channels.messages``
and ``channels.replies``."""

from channels.worker.loop import Worker, filter_channels
from channels.worker.take_ahead import PREFETCH

__all__ = ["PREFETCH", "Worker", "filter_channels"]
