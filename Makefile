# tinyseg: `make demo` and `make test` do all set-up on a fresh machine with only Python.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: demo test bench lint man install clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/generate.py --out examples/data
	$(BIN)/tinyseg score --truth examples/data/masks --pred examples/data/pred_a \
		--classes examples/data/classes.json -o examples/data/scores_a.parquet --force
	$(BIN)/tinyseg score --truth examples/data/masks \
		--run cautious=examples/data/pred_a --run eager=examples/data/pred_b \
		--classes examples/data/classes.json

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check tinyseg_cli tests benchmarks examples

man: $(STAMP)
	$(BIN)/python -m tinyseg_cli.cli.manpage man

clean:
	rm -rf $(VENV) examples/data benchmarks/out .pytest_cache
