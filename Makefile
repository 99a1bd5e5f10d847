# The two commands of the README:  make run  (the whole system)  and  make test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# what running needs (make run), and that plus the test and lint tools (make test)
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install install-run services db run ctl test lint bench bench-smoke clean

$(RUN_STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e .
	touch $(RUN_STAMP)

$(DEV_STAMP): $(RUN_STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(DEV_STAMP)

install-run: $(RUN_STAMP)

install: $(DEV_STAMP)

services:
	bash scripts/services.sh

db: install-run services
	$(BIN)/python scripts/create_database.py
	$(BIN)/alembic upgrade head

# web, worker, beat and Flower under supervisord, configured from the Procfile at
# each start (scripts/run.py); a crashed process is restarted, the others keep
# serving. The release line (migrations) runs first. Ctrl-C stops them all.
run: install-run services
	$(BIN)/python scripts/create_database.py
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/python scripts/run.py web worker beat flower

# supervisorctl for the system make run started, e.g. make ctl ARGS="restart worker"
ctl:
	$(BIN)/supervisorctl -c var/supervisord.conf $(ARGS)

# everything; PYTEST_ARGS="tests/engine -q" runs a selection instead
test: install services
	bash scripts/browser.sh
	PATH=$(CURDIR)/$(BIN):$$PATH bash scripts/test.sh $(PYTEST_ARGS)

# the benchmarks (docs/performance.md); each makes its own scratch database and Redis db.
# compare builds DBOS 3.4 into bench/.dbos-venv (git-ignored) on first use
BENCHES := compare latency throughput api batch scale recovery sweep primitives protocol
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
