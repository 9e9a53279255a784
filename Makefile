# `make demo` and `make test` each set everything up on a fresh machine, then run.
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.stamp-setup

.PHONY: setup demo test bench lint clean

setup: $(STAMP)

$(STAMP): pyproject.toml requirements/lock.txt requirements/lmms-nodeps.txt scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh
	touch $(STAMP)

demo: setup
	$(BIN)/ravst demo --out out/demo

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

bench: setup
	@set -e; for script in benchmarks/bench_*.py; do \
	  echo "== $$script"; $(BIN)/python $$script; done

lint: setup
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/mypy

clean:
	rm -rf out .pytest_cache .mypy_cache .ruff_cache
