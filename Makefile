# The two set-up commands of README.rst. Each creates .venv and installs what
# it needs, so either works on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo demo-cluster docs test install

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

# The same chat on the production design: three throwaway Redis shards, one
# runwsserver, two runworker, run together by honcho; Ctrl-C stops them all.
demo-cluster: install
	$(PY) testproject/demo_cluster.py

# The documentation as HTML, then where to open it.
docs: install
	$(PY) -m sphinx -q -b html docs docs/_build/html
	@echo "Documentation built: open file://$(CURDIR)/docs/_build/html/index.html"

# The whole suite: unit, Redis (throwaway servers), interface server, browser, docs, style.
test: install
	$(PY) runtests.py
