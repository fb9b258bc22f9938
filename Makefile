# Two commands for a fresh machine: `make run` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
PORT ?= 5000
export PORT

.PHONY: run test deps bench i18n lint clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

deps: $(VENV)/.installed node_modules/.installed

run: deps
	$(VENV)/bin/flask --app app db upgrade
	$(VENV)/bin/flask --app app demo seed
	$(PY) -m app.serve

test: deps
	$(PY) -m pytest --cov --cov-report=term --cov-fail-under=90 $(PYTEST_ARGS)

i18n: deps
	$(PY) tools/i18n.py update

lint: deps
	$(VENV)/bin/ruff check .

clean:
	rm -rf $(VENV) node_modules instance .coverage
