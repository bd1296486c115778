# One-command setup and example run, and the test command. See README.md.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: example test setup lint clean

example: setup  ## set up the environment and run the bundled example cohorts (T-ALL CD7, B-ALL CD19)
	$(BIN)/cd7escape run configs/example.yaml
	$(BIN)/cd7escape run configs/example_b_all.yaml

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml constraints.txt
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first, pinned: its CPU build is the one that fits (an unpinned torch pulls GBs of CUDA wheels)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e ".[scvi,test,dev,workflow]"
	touch $@

test: setup  ## run the test suite
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pytest -q

lint: setup
	$(BIN)/ruff check src tests benchmarks scripts
	$(BIN)/ruff format --check src tests benchmarks scripts
	$(BIN)/lint-imports --no-logo  # layers only point down (pyproject.toml [tool.importlinter])

clean:
	rm -rf results .pytest_cache
