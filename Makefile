# Quickstart targets: each creates its own virtual environment and installs what it needs.
#   make demo   simulate the embedded panel and run the full analysis (results in demo_out/)
#   make test   run the test suite (structure, sampling, recovery, notebooks)
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo demo-quick test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/vagg-bayes demo --out demo_out

demo-quick: $(STAMP)
	$(BIN)/vagg-bayes demo --quick --out demo_out

test: $(STAMP)
	$(BIN)/python -m pytest

test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python benchmarks/bench_vs_bambi.py
	$(BIN)/python benchmarks/scale.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache
