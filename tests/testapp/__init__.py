"""An installed app whose consumers.py the test suite expects to be
autodiscovered, written the way a user writes one."""
