# Two set-up commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
LLAMA_VERSION := 0.3.36
LLAMA_CMAKE := -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON \
	-DGGML_LLAMAFILE=OFF
WHEELS ?= $(HOME)/.cache/personae/wheels-avx2-nosgemm
# Never touch a model hub: everything runs from packages installed here.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first (this machine's disk has it): an unpinned torch pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	# llama-cpp-python compiles from source (about 8 minutes on 2 cores), once per machine, into
	# $(WHEELS). Portable AVX2 flags, not -march=native: on a CPU with AMX, the native build's
	# AMX matmul segfaults (ldtilecfg) where the sandbox does not grant AMX tiles, and pip's own
	# wheel cache would hand a build made for one CPU to another. Without llamafile's sgemm: with
	# it, a batched evaluation and one-token steps gave log-probabilities 0.02 nats apart (f32 KV).
	test -n "$$(ls $(WHEELS)/llama_cpp_python-$(LLAMA_VERSION)-*.whl 2>/dev/null)" || \
		CMAKE_ARGS="$(LLAMA_CMAKE)" $(PY) -m pip wheel --quiet --no-deps --no-cache-dir -w $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PY) -m pip install --quiet --no-deps --force-reinstall --no-index --find-links $(WHEELS) llama-cpp-python==$(LLAMA_VERSION)
	$(PY) -m pip install --quiet -e '.[test,embed,parquet,ray]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/personae tour --out runs/tour

test: $(STAMP)
	$(PY) -m pytest -q

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "not slow and not integration"

bench: $(STAMP)
	$(PY) -m benchmarks

clean:
	rm -rf $(VENV) runs build src/*.egg-info
