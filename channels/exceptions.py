"""Exceptions raised by the channel layer.

They live in one module so that interface servers, workers and user code can
catch them without importing a particular backend.
"""


class ChannelError(Exception):
    """Base class for every error the channel layer raises on purpose."""


class InvalidChannelName(ChannelError, ValueError):
    """A channel or group name breaks the naming rules; nothing was sent."""


class InvalidMessage(ChannelError, ValueError):
    """Message content cannot travel over a channel; nothing was sent."""


class MessageTooLarge(InvalidMessage):
    """Encoded content is over the size limit; nothing was sent."""


class ChannelFull(ChannelError):
    """The channel is at capacity.

    Raised at once instead of blocking the sender, so that an interface server
    can turn it into backpressure (503, close 1013) while it keeps serving.
    """


class ChannelBackendUnavailable(ChannelError):
    """The backend's store cannot be reached; the operation did not happen,
    unless ``maybe_taken``: the store stopped answering after the command
    was sent, so it may have run it (a stopped server runs what it was sent
    when it resumes). A send that may have been taken is never tried again
    elsewhere: that could deliver it twice."""

    maybe_taken = False
