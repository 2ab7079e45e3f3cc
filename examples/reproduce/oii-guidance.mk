# The output-imbalance study: does guiding a loss parameter by the validation OII reach a
# balanced model (OII in the target band) in fewer trainings than a grid over the same range?
# DIBE-dis and Tversky, their alpha searched over [0.1, 0.9] for OII in (0.3, 0.4):
# tune-oii's bisection against --grid 4 (5 trainings), IoU, precision and OII per step.
#
#   make -f examples/reproduce/oii-guidance.mk QUICK=1        # 2-core CPU
#   make -f examples/reproduce/oii-guidance.mk DATA=my/manifest.parquet DEVICE=cuda
#
# Variables: see common.mk. The study's paper does not state every training setting; the
# full settings below (U-Net/ResNet-34, 256-pixel patches, 40 epochs) are tinyseg's choice.

STUDY := oii-guidance
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

LOSSES ?= dibe-dis tversky
RANGE ?= 0.1,0.9
TARGET ?= 0.3,0.4
GRID ?= 4
OII_OF ?= micro
SEED := $(firstword $(SEEDS))
ifeq ($(SMOKE),1)
TRAIN := --arch half-unet --patch-size 16 -b 2 --iterations 1
SEARCH := --max-steps 2 --tol 0.4
GRID := 1
else ifeq ($(QUICK),1)
TRAIN := --arch unet-baseline --patch-size 64 -b 8 --iterations 60 --lr 0.003
SEARCH := --tol 0.1
else
TRAIN := --arch unet --encoder resnet34 --patch-size 256 -b 8 --epochs 40
SEARCH := --tol 0.05
endif
TUNE := --param alpha --range $(RANGE) --target $(TARGET) --oii-of $(OII_OF) --seed $(SEED) \
	$(COMMON) $(TRAIN)

$(OUT)/split.parquet: $(DATA_DEP)
	mkdir -p $(OUT)
	$(TS) split $(SPLIT_INPUT) $(CLASS_OPTION) --ratios 0.6,0.2,0.2 --seed 0 -q -o $@ --force

# One bisection and one grid per loss; tune-oii resumes a search that was cut short.
.PRECIOUS: $(OUT)/bisect-%/steps.parquet $(OUT)/grid-%/steps.parquet
$(OUT)/bisect-%/steps.parquet: $(OUT)/split.parquet
	$(TS) tune-oii $< --loss $* $(TUNE) $(SEARCH) -o $(OUT)/bisect-$*
$(OUT)/grid-%/steps.parquet: $(OUT)/split.parquet
	$(TS) tune-oii $< --loss $* $(TUNE) --grid $(GRID) -o $(OUT)/grid-$*

SEARCHES := $(foreach loss,$(LOSSES),$(OUT)/bisect-$(loss)/steps.parquet $(OUT)/grid-$(loss)/steps.parquet)

$(OUT)/results.md: $(SEARCHES)
	{ \
	echo "# Output-imbalance guidance: tune-oii against a grid"; \
	echo; \
	echo "Data: $(DATA). OII of $(OII_OF) in the target band ($(TARGET)), alpha in [$(RANGE)]."; \
	echo "Training: $(TRAIN) (seed $(SEED)). Made by: make -f $(firstword $(MAKEFILE_LIST))"; \
	echo "QUICK=$(QUICK) SMOKE=$(SMOKE) with $$($(TS) --version)."; \
	echo; \
	echo "The paper's finding (on its private data; its numbers are not reproduced here): the"; \
	echo "OII-guided search reaches the target band in fewer trainings than a grid."; \
	for loss in $(LOSSES); do \
	  echo; \
	  $(TS) report $(OUT)/bisect-$$loss --title "$$loss: tune-oii bisection" || exit 1; \
	  echo; \
	  $(TS) report $(OUT)/grid-$$loss --title "$$loss: grid of $(GRID) intervals" || exit 1; \
	done; \
	} > $@.part && mv $@.part $@
	@echo "wrote $@"
