"""Sphinx configuration for the channels documentation.

autodoc imports channels' modules, and several of them need configured
Django settings, so the test settings are loaded here.
"""

import os
import sys

import django

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django.setup()

import channels  # noqa: E402  (needs the path and settings above)

project = "channels"
author = "channels contributors"
copyright = "the channels contributors"
version = release = channels.__version__

extensions = ["sphinx.ext.autodoc"]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"show-inheritance": True}

exclude_patterns = ["_build"]
html_theme = "alabaster"
html_theme_options = {
    "description": "Event-driven Django",
    "fixed_sidebar": True,
}
