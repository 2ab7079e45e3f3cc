# Shared settings of the reproductions in examples/reproduce/ (included by each study's .mk).
#
#   DATA=     the dataset: a manifest table (.parquet), a folder holding image/ and mask/
#             (CrackForest's layout), or a folder of one folder per defect class with MT_Free
#             for defect-free images (magnetic_tile's layout: six classes, soft masks
#             binarised at 128). Default: CrackForest under ../shared/data beside the
#             repository (a study may choose another), else the bundled example of
#             `make demo` (examples/data).
#   QUICK=1   sizes and iterations for a 2-core CPU (minutes per training); QUICK=0 (the
#             default) runs the study's own settings, for a GPU.
#   SMOKE=1   one or two iterations per training on tiny patches: what the test suite runs
#             so that the Makefiles cannot rot.
#   SEEDS=    the training seeds (default 0 1 2); DEVICE= auto, cpu, cuda, cuda:N.
#   OUT=      where everything goes (default reproductions/<study>); results.md is last.
#   TINYSEG=  the command (default: the repository's .venv/bin/tinyseg, else tinyseg).
#
# Every step is a tinyseg command; the shell only concatenates text into results.md.

.DEFAULT_GOAL := all
REPO := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../..)
TINYSEG ?= $(if $(wildcard $(REPO)/.venv/bin/tinyseg),$(REPO)/.venv/bin/tinyseg,tinyseg)
SHARED_CRACKFOREST := $(abspath $(REPO)/../shared/data/crackforest)
SHARED_MAGNETIC_TILE := $(abspath $(REPO)/../shared/data/magnetic_tile)
EXAMPLE := $(REPO)/examples/data
DATA ?= $(if $(wildcard $(SHARED_CRACKFOREST)/mask),$(SHARED_CRACKFOREST),$(EXAMPLE)/manifest.parquet)
QUICK ?= 0
SMOKE ?= 0
SEEDS ?= 0 1 2
DEVICE ?= auto
OUT ?= reproductions/$(STUDY)
TS := $(TINYSEG)
COMMON := --device $(DEVICE) -q

# What `tinyseg split` reads: the manifest given, a class-per-folder set (its classes from
# the folders, MT_Free background-only), or DATA/image and DATA/mask by file stem.
ifeq ($(suffix $(DATA)),.parquet)
SPLIT_INPUT := $(DATA)
DATA_DEP := $(DATA)
CLASSES ?=
LAYOUT := manifest
else ifneq ($(wildcard $(DATA)/MT_Free),)
SPLIT_INPUT := --from-dir $(DATA) --class-from-folder 'MT_([^/]+)' --background-folder MT_Free \
	--mask-threshold 128
DATA_DEP :=
CLASSES ?=
LAYOUT := folders
else
SPLIT_INPUT := --from-dir $(DATA)/image --masks $(DATA)/mask
DATA_DEP :=
CLASSES ?= background,crack
LAYOUT := pairs
endif
CLASS_OPTION := $(if $(CLASSES),--classes $(CLASSES))

$(EXAMPLE)/manifest.parquet:
	$(REPO)/.venv/bin/python $(REPO)/examples/generate.py --out $(EXAMPLE)

# Each study lists its pattern rules' targets under .PRECIOUS, so that make keeps what it
# makes on the way (it deletes intermediate files otherwise, and a later run would redo
# them). Not an empty .SECONDARY: that would also stop a new prerequisite (NETWORKS=…) from
# being made. tinyseg writes every file atomically, so none is left half-written.

# Every study: `all` writes results.md; `smoke` runs every step with one or two iterations.
.PHONY: all smoke clean
all: $(OUT)/results.md
smoke:
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) SMOKE=1 all
clean:
	rm -rf $(OUT)
