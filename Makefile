# Everything a fresh machine needs, from Python 3.11 and make only.
#   make demo   set up, then run the lifecycle on the embedded defaults (local folder, SQLite)
#   make test   set up, then lint and run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
export UV_PYTHON := $(PYTHON)
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)
# compile .pyc at install: servers, workers and every flow-run subprocess import the stack from .venv, and this
# machine's PYTHONDONTWRITEBYTECODE=1 would otherwise make each of them compile it again (measured 15 s vs 6.5 s)
export UV_COMPILE_BYTECODE := 1

# checkov (the IaC scanner of tests/infra/test_infra_lint.py) conflicts with the locked set: it lives in its own
# small environment, pinned, built by uv; the test finds it through CHECKOV
CHECKOV_VERSION := 3.3.30
CHECKOV_ENV := $(TOOLS)/checkov-env
export CHECKOV ?= $(CURDIR)/$(CHECKOV_ENV)/bin/checkov

.PHONY: setup demo test lint format bench-ingest bench-train bench-score bench-drift clean

setup: $(VENV)/.synced

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check "uv==$(UV_VERSION)"

$(VENV)/.synced: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	touch $@

$(CHECKOV_ENV): $(CHECKOV_ENV)/.checkov-$(CHECKOV_VERSION)

$(CHECKOV_ENV)/.checkov-$(CHECKOV_VERSION): | $(UV)
	rm -rf $(CHECKOV_ENV)
	$(UV) venv --quiet --python $(PYTHON) $(CHECKOV_ENV)
	$(UV) pip install --quiet --python $(CHECKOV_ENV)/bin/python "checkov==$(CHECKOV_VERSION)"
	touch $@

demo: setup
	$(VENV)/bin/mlops demo

test: setup lint $(CHECKOV_ENV)
	$(VENV)/bin/pytest -q --junitxml=var/reports/junit.xml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench-ingest: setup
	$(VENV)/bin/python bench/ingest.py

bench-train: setup
	$(VENV)/bin/python bench/train.py

bench-score: setup
	$(VENV)/bin/python bench/score.py

# Evidently (the peer) needs pandas 3.0.6: it lives in its own throw-away environment, never in .venv
EVIDENTLY_ENV ?= $(TOOLS)/evidently-env
bench-drift: setup
	test -x $(EVIDENTLY_ENV)/bin/python || ($(PYTHON) -m venv $(EVIDENTLY_ENV) && \
	  $(EVIDENTLY_ENV)/bin/pip install --quiet evidently==0.7.23 pandas==3.0.6 pyarrow)
	EVIDENTLY_PYTHON=$(EVIDENTLY_ENV)/bin/python $(VENV)/bin/python bench/drift.py

clean:
	rm -rf $(VENV) $(TOOLS) var

# the closed loop on 2013 through real flows, events and triggered retrains; several minutes (var/replay)
.PHONY: bench-replay
bench-replay: setup
	$(VENV)/bin/python bench/replay.py

# the demo's phases and `mlops train`, idle vs beside 2 CPU-bound processes it starts and stops; then the ten slowest
# test files of the last `make test` (var/reports/junit.xml). Two demos: many minutes
.PHONY: bench-load
bench-load: setup
	$(VENV)/bin/python bench/load.py

.PHONY: bench-serve api
bench-serve: setup
	$(VENV)/bin/python bench/serve.py

api: setup
	$(VENV)/bin/mlops api

.PHONY: bench-stream
bench-stream: setup
	$(VENV)/bin/python bench/stream.py

# a consistent, checksummed backup of this home (MLflow, Prefect, lake pointers); `mlops backup --help` for more
.PHONY: backup
backup: setup
	$(VENV)/bin/mlops backup create

# notification delivery on a real local Prefect server: event-to-message latency, a burst gives one message
.PHONY: bench-notify
bench-notify: setup
	$(VENV)/bin/python bench/notify.py --events 10

# NannyML (the peer of the label-free estimate) lives in its own throw-away environment, never in .venv
NANNYML_ENV ?= $(TOOLS)/nannyml-env
.PHONY: bench-estimate
bench-estimate: setup
	test -x $(NANNYML_ENV)/bin/python || ($(UV) venv --quiet --python $(PYTHON) $(NANNYML_ENV) && \
	  $(UV) pip install --quiet --python $(NANNYML_ENV)/bin/python nannyml==0.13.1 statsmodels pyarrow)
	NANNYML_PYTHON=$(CURDIR)/$(NANNYML_ENV)/bin/python OMP_NUM_THREADS=1 $(VENV)/bin/python bench/estimate.py
