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
# llama-cpp-python compiles llama.cpp. Its default (GGML_NATIVE=ON) builds for the CPU it is
# compiled on, including AMX tile kernels where the CPU advertises AMX: such a build faulted on
# its first completion on a Xeon that advertises AMX, and cannot run on an older CPU at all.
# Built instead for a fixed x86-64 baseline that every server CPU of the last decade runs
# (AVX2/FMA/F16C), with AVX-512 and AMX off; measured no slower than native for the embedded
# 135M model (README, "The embedded server"). The wheel is kept in a cache folder named after
# the version and these flags, never in pip's own cache, so a native wheel of the same version
# that pip cached earlier is never reused by mistake.
LLAMA_VERSION ?= 0.3.36
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON \
	-DGGML_BMI2=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF \
	-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF
LLAMA_KEY := $(shell printf '%s %s' '$(LLAMA_VERSION)' '$(LLAMA_CMAKE_ARGS)' | sha256sum | cut -c1-16)
LLAMA_WHEELS ?= $(HOME)/.cache/synth/wheels/$(LLAMA_KEY)
NUM    ?= 20
RUN    ?= runs/demo

.PHONY: setup run test lint clean llama rebuild-llama

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip wheel
	$(PY) -m pip install --quiet '$(TORCH)'
	$(MAKE) llama
	# `runtimes`: Node, Go and zig from PyPI for executing generated code (synth.sandbox.languages).
	$(PY) -m pip install --quiet -e '.[all,runtimes,dev]'
	touch $(STAMP)

setup: $(STAMP)

# The portable llama-cpp-python wheel: compiled once per (version, flags) into LLAMA_WHEELS
# (10-16 min on 2 cores), then installed from there in seconds.
llama:
	@if ! ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl >/dev/null 2>&1; then \
		echo "building llama-cpp-python $(LLAMA_VERSION) (portable x86-64 build, 10-16 min)"; \
		mkdir -p $(LLAMA_WHEELS).part && \
		CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(PY) -m pip wheel --quiet --no-cache-dir --no-deps \
			--no-binary llama-cpp-python -w $(LLAMA_WHEELS).part 'llama-cpp-python==$(LLAMA_VERSION)' \
		&& rm -rf $(LLAMA_WHEELS) && mv $(LLAMA_WHEELS).part $(LLAMA_WHEELS); \
	fi
	$(PY) -m pip install --quiet --no-cache-dir --force-reinstall --no-deps \
		$(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl
	$(PY) -m pip install --quiet "$$(ls $(LLAMA_WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl)[server]"

# Rebuild the wheel from source (e.g. after changing LLAMA_CMAKE_ARGS for this machine).
rebuild-llama:
	rm -rf $(LLAMA_WHEELS)
	$(MAKE) llama

run: setup
	$(VENV)/bin/synth run examples/demo.toml --num $(NUM) --run-dir $(RUN)
	@$(PY) -c "import sys; s=open('$(RUN)/dataset/jsonl/train.jsonl').read().strip(); \
		sys.exit(0) if s else sys.exit('make run: the demo produced no row ' \
		'(see $(RUN)/steps/*/rejects.jsonl and $(RUN)/server.log)')"

lint: setup
	$(VENV)/bin/ruff check synth tests benchmarks
	$(VENV)/bin/mypy synth

test: lint
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
