# The battery-foil thesis: how patch resampling, one-vs-rest models and class weights change
# what a baseline U-Net (32 maps first) finds, and how stable the result is. (1) resampling:
# equal samples per class, the rarest class oversampled, equal pixels per class; (2) wCE and
# focal loss with ICF against ISCF weights; (3) one binary model per foreground class, fused,
# against one multi-class model trained alike; (4) stability: the standard deviation over
# the late checkpoints of one training (PSoI) and over trainings with different seeds
# (PSoMT). TPR, FPR and precision per class.
#
# Data: magnetic_tile as a six-class set by default (../shared/data/magnetic_tile: five
# defect folders, and 100 MT_Free images as background only), split by image 70/15/15 with
# the classes' presence stratified; CrackForest or a manifest with a region split (the top
# third of every image validates).
#
#   make -f examples/reproduce/resampling-ovr.mk QUICK=1
#   make -f examples/reproduce/resampling-ovr.mk DATA=foils/manifest.parquet RARE=crack
#
# Variables: see common.mk; RARE= the class to oversample (default: Blowhole on magnetic_tile,
# else crack); FOREGROUND= the classes of the one-vs-rest models (default: every defect class
# of magnetic_tile, else RARE); CHECKPOINTS= how many late checkpoints PSoI uses (default 3).

STUDY := resampling-ovr
SHARED_MT := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))/../../../shared/data/magnetic_tile)
ifneq ($(wildcard $(SHARED_MT)/MT_Free),)
DATA ?= $(SHARED_MT)
endif
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

STRATEGIES ?= equal-samples oversample equal-pixels
LOSSES ?= wce focal
SCHEMES ?= icf iscf
ifeq ($(LAYOUT),folders)
RARE ?= Blowhole
FOREGROUND ?= Blowhole Break Crack Fray Uneven
SPLIT_OPTIONS ?= --ratios 0.7,0.15,0.15 --stratify --seed 0
SPLIT_TEXT := by image 70/15/15, stratified by class presence
else
RARE ?= crack
FOREGROUND ?= $(RARE)
SPLIT_OPTIONS ?= --region top:0.33
SPLIT_TEXT := region split top:0.33 (the top third of each image validates)
endif
CHECKPOINTS ?= 3
SEED := $(firstword $(SEEDS))
ifeq ($(SMOKE),1)
PATCHES := --size 32 -n 4
TRAIN := -b 2 --iterations 2
EVERY := 1
CHECKPOINTS := 2
else ifeq ($(QUICK),1)
PATCHES := --size 64 -n 64
TRAIN := -b 8 --iterations 60 --lr 0.003
EVERY := 20
else
PATCHES := --size 256 -n 512
TRAIN := -b 8 --iterations 8000
EVERY := 500
endif
BASE := --arch unet-baseline $(TRAIN) $(COMMON)
METRICS := recall,fpr,precision
SPLIT := $(OUT)/split.parquet
# infer the val regions with checkpoint(s) $(2) into $(1)/pred and score them into $(1).parquet
PREDICT = $(TS) infer $(foreach c,$(2),-c $(c)) $(SPLIT) --split val $(COMMON) -o $(1)/pred --force \
	&& $(TS) score --truth $(SPLIT) --split val --pred $(1)/pred -q -o $(1).parquet --force

$(SPLIT): $(DATA_DEP)
	mkdir -p $(OUT)
	$(TS) split $(SPLIT_INPUT) $(CLASS_OPTION) $(SPLIT_OPTIONS) -q -o $@ --force
.PRECIOUS: $(OUT)/weights-%.parquet $(OUT)/patches-%.parquet $(OUT)/resample/%.parquet \
	$(OUT)/weights/%.parquet
$(OUT)/weights-%.parquet: $(SPLIT)
	$(TS) classweights $< --scheme $* -q -o $@ --force

# (1) resampling strategies, wCE with ISCF weights
$(OUT)/patches-%.parquet: $(SPLIT)
	$(TS) resample $< --strategy $* $(PATCHES) $(if $(filter oversample,$*),--class $(RARE)) \
		--seed $(SEED) -q -o $@ --force
$(OUT)/resample/%.parquet: $(OUT)/patches-%.parquet $(OUT)/weights-iscf.parquet
	$(TS) train $(SPLIT) --patches $< --loss wce --class-weights $(OUT)/weights-iscf.parquet \
		--seed $(SEED) $(BASE) -o $(OUT)/resample/$*/run --force
	$(call PREDICT,$(OUT)/resample/$*,$(OUT)/resample/$*/run/best.pt)

# (2) loss × weighting scheme, equal-samples patches
$(OUT)/weights/%.parquet: $(OUT)/patches-equal-samples.parquet $(OUT)/weights-icf.parquet $(OUT)/weights-iscf.parquet
	loss=$$(echo $* | cut -d- -f1); scheme=$$(echo $* | cut -d- -f2); \
	$(TS) train $(SPLIT) --patches $< --loss $$loss --class-weights $(OUT)/weights-$$scheme.parquet \
		--seed $(SEED) $(BASE) -o $(OUT)/weights/$*/run --force
	$(call PREDICT,$(OUT)/weights/$*,$(OUT)/weights/$*/run/best.pt)

# (3) one binary model per foreground class, fused by infer, and one multi-class model
# trained alike (focal loss, no weights, the same patches)
$(OUT)/ovr.parquet: $(OUT)/patches-equal-samples.parquet $(OUT)/weights-iscf.parquet
	for class in $(FOREGROUND); do \
	  $(TS) train $(SPLIT) --patches $< --binary $$class --loss focal --seed $(SEED) $(BASE) \
		-o $(OUT)/ovr/$$class/run --force || exit 1; \
	done
	$(call PREDICT,$(OUT)/ovr,$(foreach c,$(FOREGROUND),$(OUT)/ovr/$(c)/run/best.pt))
$(OUT)/multiclass.parquet: $(OUT)/patches-equal-samples.parquet
	$(TS) train $(SPLIT) --patches $< --loss focal --seed $(SEED) $(BASE) \
		-o $(OUT)/multiclass/run --force
	$(call PREDICT,$(OUT)/multiclass,$(OUT)/multiclass/run/best.pt)

# (4) stability: late checkpoints of one training (PSoI), and one training per seed (PSoMT)
$(OUT)/psoi.parquet: $(OUT)/patches-equal-samples.parquet $(OUT)/weights-iscf.parquet
	$(TS) train $(SPLIT) --patches $< --loss wce --class-weights $(OUT)/weights-iscf.parquet \
		--seed $(SEED) $(BASE) --checkpoint-every $(EVERY) -o $(OUT)/psoi/run --force
	for ckpt in $$(ls $(OUT)/psoi/run/step-*.pt | sort -t- -k2 -n | tail -n $(CHECKPOINTS)); do \
	  step=$$(basename $$ckpt .pt); \
	  $(TS) infer -c $$ckpt $(SPLIT) --split val $(COMMON) -o $(OUT)/psoi/$$step --force || exit 1; \
	done
	$(TS) score --truth $(SPLIT) --split val -q -o $@ --force \
		$$(for d in $$(ls -d $(OUT)/psoi/step-* | sort -t- -k2 -n); do echo --run $$(basename $$d)=$$d; done)
$(OUT)/psomt.parquet: $(OUT)/patches-equal-samples.parquet $(OUT)/weights-iscf.parquet
	for seed in $(SEEDS); do \
	  $(TS) train $(SPLIT) --patches $< --loss wce --class-weights $(OUT)/weights-iscf.parquet \
		--seed $$seed $(BASE) -o $(OUT)/psomt/seed$$seed/run --force && \
	  $(TS) infer -c $(OUT)/psomt/seed$$seed/run/best.pt $(SPLIT) --split val $(COMMON) \
		-o $(OUT)/psomt/seed$$seed/pred --force || exit 1; \
	done
	$(TS) score --truth $(SPLIT) --split val -q -o $@ --force \
		$(foreach s,$(SEEDS),--run seed$(s)=$(OUT)/psomt/seed$(s)/pred)

COMBOS := $(foreach l,$(LOSSES),$(foreach s,$(SCHEMES),$(l)-$(s)))
TABLES := $(foreach s,$(STRATEGIES),$(OUT)/resample/$(s).parquet) \
	$(foreach c,$(COMBOS),$(OUT)/weights/$(c).parquet) $(OUT)/ovr.parquet $(OUT)/multiclass.parquet \
	$(OUT)/psoi.parquet $(OUT)/psomt.parquet

$(OUT)/results.md: $(TABLES)
	{ \
	echo "# Resampling, one-vs-rest models and class weights: what changes, how stable"; \
	echo; \
	echo "Data: $(DATA), $(SPLIT_TEXT)."; \
	echo "Baseline U-Net-32, $(TRAIN), patches $(PATCHES). Made by:"; \
	echo "make -f $(firstword $(MAKEFILE_LIST)) QUICK=$(QUICK) SMOKE=$(SMOKE), $$($(TS) --version)."; \
	echo; \
	echo "The thesis's findings (on its private battery-foil images, not reproduced here):"; \
	echo "its Table 3.5 balanced pixels to within 10 % with equal-pixels patches; it reports"; \
	echo "TPR, FPR and precision per class and the PSoI/PSoMT standard deviations."; \
	echo; \
	$(TS) report $(foreach s,$(STRATEGIES),$(OUT)/resample/$(s).parquet) $(foreach s,$(STRATEGIES),--label $(s)) \
		--metric $(METRICS) --title "1. Resampling (wCE, ISCF)" || exit 1; \
	echo; \
	$(TS) report $(foreach c,$(COMBOS),$(OUT)/weights/$(c).parquet) $(foreach c,$(COMBOS),--label $(c)) \
		--metric $(METRICS) --title "2. Loss and weights (equal-samples patches)" || exit 1; \
	echo; \
	$(TS) report $(OUT)/ovr.parquet $(OUT)/multiclass.parquet --label "one-vs-rest ($(FOREGROUND))" \
		--label "one multi-class model" --metric $(METRICS) \
		--title "3. One binary model per class, fused, against one multi-class model" || exit 1; \
	echo; \
	$(TS) report $(OUT)/psoi.parquet --label "PSoI: last $(CHECKPOINTS) checkpoints" --metric $(METRICS) \
		--each-run --title "4a. Stability over late checkpoints (PSoI)" || exit 1; \
	echo; \
	$(TS) report $(OUT)/psomt.parquet --label "PSoMT: seeds $(SEEDS)" --metric $(METRICS) \
		--each-run --title "4b. Stability over trainings (PSoMT)" || exit 1; \
	} > $@.part && mv $@.part $@
	@echo "wrote $@"
