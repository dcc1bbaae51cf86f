# Two commands do everything on a fresh machine:
#   make demo   -- set up, then certify the bundled example and re-check its certificate
#   make test   -- set up, then run the whole test suite (unit, property, CLI, proofs)
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO ?= examples/showcase/final.json

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[test,plot,dask]"
	-$(BIN)/pip install -q "torch==2.13.0" || echo "torch not installed: torch tests will be skipped"
	touch $@

setup: $(BIN)/.installed

demo: setup
	@mkdir -p out
	$(BIN)/relucert certify $(DEMO) --certificate out/demo_certificate.json
	$(BIN)/relucert check out/demo_certificate.json
	$(BIN)/relucert certify examples/paper/1d_input_with_bias.json --certificate out/paper_1d_certificate.json
	$(BIN)/relucert check out/paper_1d_certificate.json

test: setup
	$(BIN)/python -m pytest

bench: setup
	$(BIN)/python benchmarks/bench_exact.py
	$(BIN)/python benchmarks/bench_screen.py
	$(BIN)/python benchmarks/bench_perturbation.py

clean:
	rm -rf $(VENV) out .pytest_cache .hypothesis
