# The two set-up commands of README.rst. Each creates .venv and installs what
# it needs, so either works on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test install

$(VENV)/.installed: setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[tests]'
	touch $@

install: $(VENV)/.installed

# The chat demo on the in-memory backend: http://127.0.0.1:8000/
demo: install
	$(PY) testproject/manage.py migrate --noinput
	$(PY) testproject/manage.py demo_users
	$(PY) testproject/manage.py runserver

# The whole suite: unit, Redis (throwaway servers), interface server, browser, docs, style.
test: install
	$(PY) runtests.py
