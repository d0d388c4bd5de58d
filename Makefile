# Narrows — the two commands a newcomer needs are `make up` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check
# Stamps: reinstall only when pyproject.toml changes (so a second `make test` is quick).
RUN_STAMP := $(VENV)/.narrows-run
DEV_STAMP := $(VENV)/.narrows-dev
NARROWS_ARGS ?=

.PHONY: up test lint typecheck imports pytest unit integration e2e bench fuzz soak system-deps clean help

help:
	@echo "make up     - install into .venv and run the whole stack (narrows up --load)"
	@echo "make test   - install dev tools, system test dependencies, then ruff, mypy, import-linter, pytest"
	@echo "make bench  - run benchmarks/ and print ratios measured side by side"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing narrows into $(VENV)"
	$(PIP) install -q -e . 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@

$(DEV_STAMP): pyproject.toml | $(VENV)/bin/python
	@echo "==> installing narrows[dev] into $(VENV)"
	$(PIP) install -q -e '.[dev]' 2> >(grep -v "is ignored: it is neither" >&2)
	@touch $@ $(RUN_STAMP)

up: $(RUN_STAMP)
	$(VENV)/bin/narrows up --load $(NARROWS_ARGS)

# Programs the integration tests need that do not come from PyPI.
system-deps:
	@./.ci/system-deps.sh

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(DEV_STAMP)
	$(VENV)/bin/mypy

imports: $(DEV_STAMP)
	$(VENV)/bin/lint-imports

# Unit tests are CPU-bound and time nothing: they share the cores (pytest-xdist). The
# integration and e2e tests run processes and measure latencies: one at a time, alone.
pytest: $(DEV_STAMP) system-deps
	$(VENV)/bin/pytest -n auto tests/unit
	$(VENV)/bin/pytest tests/integration tests/e2e

test: $(DEV_STAMP) system-deps lint typecheck imports pytest

unit: $(DEV_STAMP)
	$(VENV)/bin/pytest -n auto tests/unit

integration: $(DEV_STAMP) system-deps
	$(VENV)/bin/pytest tests/integration

e2e: $(DEV_STAMP) system-deps
	$(VENV)/bin/pytest tests/e2e

# `make bench BENCH=ingest` runs one benchmark.
bench: $(DEV_STAMP)
	$(PY) -m benchmarks $(BENCH)

fuzz: $(DEV_STAMP)
	NARROWS_FUZZ_SECONDS=$${NARROWS_FUZZ_SECONDS:-600} $(VENV)/bin/pytest -m fuzz tests

soak: $(DEV_STAMP) system-deps
	NARROWS_SOAK=1 $(VENV)/bin/pytest -m soak tests

clean:
	rm -rf $(VENV) .narrows .pytest_cache .mypy_cache .ruff_cache
