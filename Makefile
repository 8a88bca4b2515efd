# `make demo` and `make test` build .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch

.PHONY: demo test bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU torch wheel this machine kind keeps on disk; a plain `torch` pulls a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[tensorflow,jax,torch,test]"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m keras_convx demo

# One pytest process per Keras backend (the backend is fixed at import time).
test: $(STAMP)
	@set -e; for b in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$b"; \
		KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider tests; \
	done

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) build *.egg-info
