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

DEMO := examples/data
TS := $(BIN)/tinyseg

# The whole pipeline on the bundled example: split -> classweights -> resample -> train ->
# infer -> score -> overlay and plot (open examples/data/review/index.html). About a minute
# of training on 2 CPU cores.
demo: $(STAMP)
	$(BIN)/python examples/generate.py --out $(DEMO)
	$(TS) split $(DEMO)/manifest.parquet --ratios 0.6,0.2,0.2 --stratify --seed 0 \
		-o $(DEMO)/split.parquet --force
	$(TS) classweights $(DEMO)/split.parquet --scheme iscf -o $(DEMO)/weights.parquet --force
	$(TS) resample $(DEMO)/split.parquet --strategy equal-samples --size 64 -n 64 --draws 4 \
		--seed 0 -o $(DEMO)/patches.parquet --force
	$(TS) train $(DEMO)/split.parquet --patches $(DEMO)/patches.parquet --refresh-every 2 \
		--class-weights $(DEMO)/weights.parquet --loss focal --augment flip,rot90 \
		--epochs 8 -b 16 --lr 0.003 --seed 0 -o $(DEMO)/run --force
	$(TS) infer --checkpoint $(DEMO)/run/best.pt $(DEMO)/split.parquet --split val \
		-o $(DEMO)/pred_val --force
	$(TS) score --truth $(DEMO)/split.parquet --split val --pred $(DEMO)/pred_val --objects \
		-o $(DEMO)/scores_val.parquet --force
	$(TS) overlay --image $(DEMO)/split.parquet --truth $(DEMO)/split.parquet --split val \
		--pred $(DEMO)/pred_val --crops 3 --panel -o $(DEMO)/review --force
	$(TS) plot $(DEMO)/run -o $(DEMO)/review/training.png --force

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-stamp

# pyEdgeEval (the BSDS matching, GPL-2.0: measured against, never imported by tinyseg) is an
# sdist of Cython: it builds only without build isolation, with wheel and cython present,
# and needs scikit-image and OpenCV at run time without declaring them.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -e '.[dev,bench]'
	$(BIN)/python -m pip install wheel cython
	$(BIN)/python -m pip install --no-build-isolation pyedgeeval==0.2.8 scikit-image \
		opencv-python-headless
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python benchmarks/run.py

lint: $(STAMP)
	$(BIN)/ruff check tinyseg_cli tests benchmarks examples

man: $(STAMP)
	$(BIN)/python -m tinyseg_cli.cli.manpage man

clean:
	rm -rf $(VENV) examples/data benchmarks/out .pytest_cache
