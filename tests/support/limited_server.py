"""An interface server and a worker thread in a child process whose
descriptor limit (RLIMIT_NOFILE) is ``argv[1]``, for the test of what
clients get at that limit::

    python -m tests.support.limited_server 200

prints ``<port> <connection cap>`` once it serves, logs channels.server on
standard error, and stops when its standard input closes."""

import logging
import os
import resource
import sys


def main() -> None:
    limit = int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    logging.getLogger("channels.server").addHandler(logging.StreamHandler(sys.stderr))
    from tests.support.interface_server import serving

    with serving(workers=1) as (handle, _):
        print(handle.port, handle.server.max_connections, flush=True)
        sys.stdin.read()


if __name__ == "__main__":
    main()
