# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates the local virtual environment in .venv and installs rfmml with
# its test extras the first time (and again whenever pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install demo test test-fast lint bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@touch $(STAMP)

## Run the bundled CDNOW experiment end to end in ./rfmml-output
demo: $(STAMP)
	$(BIN)/rfmml demo --output rfmml-output

## Whole suite: lint, unit, slow, Spark and notebook tests (pytest exit 5, no tests, fails)
test: $(STAMP)
	$(BIN)/ruff check rfmml tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q --nbmake tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not spark"

lint: $(STAMP)
	$(BIN)/ruff check rfmml tests benchmarks
	$(BIN)/lint-imports

## Benchmarks against lifetimes in the same run; writes benchmarks/RESULTS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_segments.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis rfmml-output mlflow.db mlruns mlartifacts
