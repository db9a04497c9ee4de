# Two commands on a fresh machine: `make demo` and `make test`.
# Each creates the local virtual environment in .venv and installs rfmml with
# its test extras the first time (and again whenever pyproject.toml changes).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Tests run in random order (pytest-randomly); the seed is printed so a failing
# order can be replayed with `make test SEED=<seed>`.
ifndef SEED
SEED   := $(shell od -An -N2 -tu2 /dev/urandom | tr -d ' ')
endif

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

## Whole suite: lint, unit, slow, Spark, report (headless Chromium) and notebook
## tests in random order (pytest exits 5 when it collects no test, which fails the target),
## on two pytest-xdist workers by whole files, all Spark files on one worker
## (tests/conftest.py); WORKERS=0 runs everything in one process
WORKERS ?= 2
# Each worker keeps to one OpenMP/BLAS thread: two workers on two cores with two
# threads each (scikit-learn's k-means, BLAS) only wait for each other.
THREADS := $(if $(filter 0 1,$(WORKERS)),,OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1)
test: lint
	@echo "test order seed: $(SEED) (replay with: make test SEED=$(SEED))"
	$(THREADS) $(BIN)/python -m pytest -q -p randomly --randomly-seed=$(SEED) --durations=25 \
		-n $(WORKERS) --dist loadfile --nbmake tests notebooks

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow and not spark"

## ruff (lint and format), mypy and the stage layering (import-linter)
lint: $(STAMP)
	$(BIN)/ruff check rfmml tests benchmarks experiments
	$(BIN)/ruff format --check rfmml tests benchmarks experiments
	$(BIN)/mypy
	$(BIN)/lint-imports

## Benchmarks against lifetimes in the same run; writes benchmarks/RESULTS.md
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_features.py
	$(BIN)/python benchmarks/bench_models.py
	$(BIN)/python benchmarks/bench_segments.py
	$(BIN)/python benchmarks/bench_intervals.py
	$(BIN)/python benchmarks/bench_state.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis rfmml-output mlflow.db mlruns mlartifacts
