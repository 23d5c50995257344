"""A plain Django project with no channels ROUTING, for the runserver
tests: every page must work as under Django's own runserver. With
PLAIN_WITHOUT_CHANNELS=1 channels is not installed, so Django's runserver
serves it, for comparison."""
