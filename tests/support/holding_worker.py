"""``manage.py runworker`` (its arguments are this script's) whose worker
keeps the messages it took ahead for as long as its consumer runs, rather
than giving them back after ``Worker.release_after`` (0.1 s): a worker
killed while it holds them, which otherwise takes a kill within that
tenth of a second."""

import sys

from django.core.management import execute_from_command_line

from channels.worker.loop import Worker

Worker.release_after = 3600

execute_from_command_line(["django-admin", "runworker", *sys.argv[1:]])
