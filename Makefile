# apimon — the two commands: `make run` (the demo, every process) and `make test`.
SHELL := /bin/sh
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PORT ?= 8000

.PHONY: run test lint format venv migrate seed clean browsers

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || { PYTHON=$$(scripts/find-python) || exit 1; echo "Creating $(VENV) with $$PYTHON"; $$PYTHON -m venv $(VENV); }
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

venv: $(STAMP)

migrate: $(STAMP)
	$(PY) manage.py migrate --no-input

seed: migrate
	$(PY) manage.py seed_demo

## make run: install, migrate, seed the demo, start every process; Ctrl-C stops them all.
run: seed
	@echo ""
	@echo "  apimon is starting at http://127.0.0.1:$(PORT)/  (Ctrl-C stops every process)"
	@echo ""
	APIMON_PORT=$(PORT) SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} $(VENV)/bin/honcho -f Procfile.dev start

## make test: the whole suite (SQLite and stand-ins unless DATABASE_URL / REDIS_URL are set).
test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo --no-cache

format: $(STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf var/ staticfiles/ .pytest_cache .ruff_cache
