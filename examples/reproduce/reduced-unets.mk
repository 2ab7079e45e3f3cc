# The microplastic study: do reduced U-Nets (Half U-Net, MultiResUNet and its half and
# quarter) keep the full network's scores at a fraction of its size? The five networks under
# K-fold grouped cross-validation, each fold trained, predicted and scored; per fold and mean
# ± std over folds: F1, IoU, recall-weighted F1 and IoU ('tinyseg score --run', one run per
# fold); each network's parameters and FLOPs ('tinyseg train --dry-run --json').
#
#   make -f examples/reproduce/reduced-unets.mk QUICK=1          # 2-core CPU
#   make -f examples/reproduce/reduced-unets.mk NETWORKS='half-unet multiresunet' FOLDS=3
#
# Variables: see common.mk. The study trained at 512×512; QUICK trains 64-pixel patches.

STUDY := reduced-unets
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

NETWORKS ?= unet-64 half-unet multiresunet half-multiresunet quarter-multiresunet
FOLDS ?= 5
SEED := $(firstword $(SEEDS))
ifeq ($(SMOKE),1)
FOLDS := 2
TRAIN := --patch-size 16 -b 2 --iterations 1
else ifeq ($(QUICK),1)
TRAIN := --patch-size 64 -b 8 --iterations 150 --lr 0.003 --loss dice
else
TRAIN := --patch-size 512 -b 4 --epochs 100 --loss dice
endif
FOLD_IDS := $(shell seq 0 $$(($(FOLDS) - 1)))

# Folds of groups (the views of one object never split), then each fold as a split table.
$(OUT)/folds.parquet: $(DATA_DEP)
	mkdir -p $(OUT)
	$(TS) split $(SPLIT_INPUT) $(CLASS_OPTION) --folds $(FOLDS) --seed 0 -q -o $@ --force
.PRECIOUS: $(OUT)/fold-%.parquet $(OUT)/%/size.json
$(OUT)/fold-%.parquet: $(OUT)/folds.parquet
	$(TS) split $< --fold $* -q -o $@ --force

# network × fold: train on the fold's training rows, predict its held-out rows.
define NETWORK_FOLD
$(OUT)/$(1)/fold-$(2)/pred/predictions.parquet: $(OUT)/fold-$(2).parquet
	$(TS) train $$< --arch $(1) $(TRAIN) --seed $(SEED) $(COMMON) -o $(OUT)/$(1)/fold-$(2)/run \
		--force
	$(TS) infer -c $(OUT)/$(1)/fold-$(2)/run/best.pt $$< --split val $(COMMON) \
		-o $(OUT)/$(1)/fold-$(2)/pred --force
endef
$(foreach net,$(NETWORKS),$(foreach fold,$(FOLD_IDS),$(eval $(call NETWORK_FOLD,$(net),$(fold)))))

# Each network's folds scored as runs against the whole table (each fold's rows only).
define NETWORK_SCORES
$(OUT)/$(1)/scores.parquet: $(foreach fold,$(FOLD_IDS),$(OUT)/$(1)/fold-$(fold)/pred/predictions.parquet)
	$(TS) score --truth $(OUT)/folds.parquet --missing skip -q --force -o $$@ \
		$(foreach fold,$(FOLD_IDS),--run fold$(fold)=$(OUT)/$(1)/fold-$(fold)/pred)
endef
$(foreach net,$(NETWORKS),$(eval $(call NETWORK_SCORES,$(net))))

SCORES := $(foreach net,$(NETWORKS),$(OUT)/$(net)/scores.parquet)
METRICS := f1,iou,rw_f1,rw_iou

# Each network's size at the study's input (512×512; SMOKE: 64×64), as trained here.
SIZE_INPUT := $(if $(filter 1,$(SMOKE)),64,512)
$(OUT)/%/size.json: $(OUT)/fold-0.parquet
	mkdir -p $(@D)
	$(TS) train $< --arch $* --resize $(SIZE_INPUT) $(SIZE_INPUT) --dry-run --json $(COMMON) \
		> $@.part && mv $@.part $@
SIZES := $(foreach net,$(NETWORKS),$(OUT)/$(net)/size.json)

$(OUT)/results.md: $(SCORES) $(SIZES)
	{ \
	echo "# Reduced U-Nets under $(FOLDS)-fold grouped cross-validation"; \
	echo; \
	echo "Data: $(DATA). Training: $(TRAIN) (seed $(SEED)). Made by:"; \
	echo "make -f $(firstword $(MAKEFILE_LIST)) QUICK=$(QUICK) SMOKE=$(SMOKE), $$($(TS) --version)."; \
	echo; \
	echo "The paper's Table 4 (on its private data): parameters and FLOPs at 512×512 of U-Net"; \
	echo "21.9776 M / 329.7 B, Half U-Net 1.7724 M / 204.0 B, MultiResUNet 13.5469 M / 204.8 B,"; \
	echo "Half MultiResUNet 0.2149 M / 42.9 B, Quarter MultiResUNet 0.0445 M / 21.9 B."; \
	echo; \
	$(TS) report $(SIZES) $(foreach net,$(NETWORKS),--label $(net)) \
		--title "Size at $(SIZE_INPUT)×$(SIZE_INPUT) (FLOPs: 2 per multiply-add; output channels as trained here)" || exit 1; \
	echo; \
	$(TS) report $(SCORES) $(foreach net,$(NETWORKS),--label $(net)) --metric $(METRICS) \
		--title "Mean ± std over folds" || exit 1; \
	for net in $(NETWORKS); do \
	  echo; \
	  $(TS) report $(OUT)/$$net/scores.parquet --metric $(METRICS) --classes macro \
		--title "$$net per fold" --each-run || exit 1; \
	done; \
	} > $@.part && mv $@.part $@
	@echo "wrote $@"
