# The two commands a new user types: `make demo` and `make test`. Each sets itself up on first use.
VENV := .venv
BIN := $(VENV)/bin
STUDY ?= examples/quickstart.toml

.PHONY: setup demo test lint bench clean

setup:
	@bash scripts/setup.sh

demo: setup
	$(BIN)/lineup run $(STUDY)

test: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python benchmarks/bench_training.py
	$(BIN)/python benchmarks/bench_stacked.py
	$(BIN)/python benchmarks/bench_engine_options.py
	$(BIN)/python benchmarks/profile_step.py

lint: setup
	$(BIN)/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) lineup-results .pytest_cache
