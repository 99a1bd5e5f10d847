# The two commands of the README:  make run  (the whole system)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services db run test lint bench bench-smoke clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services:
	bash scripts/services.sh

db: install services
	$(BIN)/python scripts/create_database.py
	$(BIN)/alembic upgrade head

# web, worker, beat and Flower under honcho, after the release step (migrations).
# Ctrl-C: honcho 2.0 SIGTERMs each process group, then SIGKILLs after a fixed 5 s
# (no option); steps still running then are resumed by the recovery sweep.
run: db
	mkdir -p var
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/honcho start -p $${PORT:-8000} web worker beat flower

# everything; PYTEST_ARGS="tests/engine -q" runs a selection instead
test: install services
	bash scripts/browser.sh
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/test.sh $(PYTEST_ARGS)

# the benchmarks (docs/performance.md); each makes its own scratch database and Redis db.
# compare builds DBOS 3.4 into bench/.dbos-venv (git-ignored) on first use
BENCHES := compare latency throughput api scale recovery protocol
bench: install services
	mkdir -p var/bench
	for b in $(BENCHES); do PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m bench.$$b | tee var/bench/$$b.txt || exit 1; done

bench-smoke: install services
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python -m pytest tests/bench -q

lint: install
	$(BIN)/ruff check app workers tests bench
	$(BIN)/mypy app/engine

clean:
	rm -rf $(VENV) var .pytest_cache
