"""``manage.py runworker`` (its arguments are this script's) whose worker
keeps the messages it took ahead for as long as its consumer runs, rather
than giving them back after ``Worker.release_after`` (0.1 s), and takes
several ahead even after a consumer that ran long (``TakeAhead.seconds``):
a worker killed while it holds them, which otherwise takes a kill within
that tenth of a second."""

import sys

from django.core.management import execute_from_command_line

from channels.worker.loop import Worker
from channels.worker.take_ahead import TakeAhead

Worker.release_after = 3600
TakeAhead.seconds = 3600

execute_from_command_line(["django-admin", "runworker", *sys.argv[1:]])
