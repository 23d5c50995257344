"""The worker side: the loop that runs consumers (``loop``), Django's request
handling as a consumer (``handler``, ``request_body``), Django views in
front of a channel and behind one (``views``), and waiting for responses on
reply channels (``replies``). Nothing here imports ``channels.interfaces``:
the two sides meet only in ``channels.messages``."""

from channels.worker.loop import PREFETCH, Worker, filter_channels

__all__ = ["PREFETCH", "Worker", "filter_channels"]
