"""The logging settings shown in docs/worker.rst."""

# docs: start
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        # channels.worker logs each consumer's exception with its traceback.
        "channels": {"handlers": ["console"], "level": "INFO"},
    },
}
# docs: end
