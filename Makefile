# Two commands do everything on a fresh machine:
#   make demo   -- set up the core package, certify the bundled example and re-check its certificate
#   make test   -- set up with the test extras (torch, dask, matplotlib), run the whole test suite
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= examples/showcase/final.json

.PHONY: setup setup-test demo test bench clean

# core install: what `relucert certify` needs, nothing more (no torch, no dask)
$(BIN)/.core: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e .
	touch $@

# everything the test suite uses (optional extras included, so that no test is skipped)
$(BIN)/.test: $(BIN)/.core
	$(BIN)/pip install -e ".[test,plot,dask,safetensors,fast]"
	$(BIN)/pip install "torch==2.13.0" || echo "torch not installed: torch tests will be skipped"
	touch $@

setup: $(BIN)/.core
setup-test: $(BIN)/.test

demo: setup
	@mkdir -p out
	$(BIN)/relucert certify $(DEMO) --certificate out/demo_certificate.json
	$(BIN)/relucert check out/demo_certificate.json
	$(BIN)/relucert certify examples/paper/1d_input_with_bias.json --certificate out/paper_1d_certificate.json
	$(BIN)/relucert check out/paper_1d_certificate.json
	@echo
	@echo "relucert is installed in $(VENV): run '. $(VENV)/bin/activate' to put 'relucert' on PATH"

test: setup-test
	$(BIN)/python -m pytest -n 2

bench: setup-test
	$(BIN)/python benchmarks/bench_exact.py
	$(BIN)/python benchmarks/bench_screen.py
	$(BIN)/python benchmarks/bench_perturbation.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
