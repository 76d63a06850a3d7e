# Two entry points, each doing all of the set-up it needs on a fresh machine:
#   make run    set up, then `synth run examples/demo.toml`: seeds -> coreset -> generate ->
#               score -> decontam -> select -> dataset, on the embedded defaults
#   make test   set up, then lint + type-check + the whole test suite (CI runs this)

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# The CPU build of torch; an unpinned torch resolves to a CUDA build and GBs of packages.
TORCH  ?= torch==2.13.0
NUM    ?= 20
RUN    ?= runs/demo

.PHONY: setup run test lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet '$(TORCH)'
	# llama-cpp-python compiles llama.cpp here on first install (10-16 min on 2 cores;
	# pip caches the wheel, so later set-ups take seconds).
	$(PY) -m pip install --quiet -e '.[all,dev]'
	touch $(STAMP)

setup: $(STAMP)

run: setup
	$(VENV)/bin/synth run examples/demo.toml --num $(NUM) --run-dir $(RUN)

lint: setup
	$(VENV)/bin/ruff check synth tests benchmarks
	$(VENV)/bin/mypy synth

test: lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
