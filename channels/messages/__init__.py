"""The message standards (docs/message-standards.rst) in code: the one place
that builds, checks and parses the messages that interface servers and
workers exchange. Both sides import it; it imports neither, and does no I/O."""
