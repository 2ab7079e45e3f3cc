# One converged crack model scored the ways the crack literature scores: exact pixels at
# the model's own threshold (F1, F2, IoU, OII), then its probabilities swept over 99
# thresholds (ODS, OIS, AP) exactly, within 2 px (DeepCrack's tolerance) and within
# 0.0075 × the image diagonal (the BSDS/Dollár toolbox that CrackForest's own code calls),
# one-to-one (matched) and each side alone (relaxed), with the truth as given or thinned, and
# the mean-of-image-F "ODS" of another family of papers. How far do the numbers move?
#
#   make -f examples/reproduce/crack-conventions.mk QUICK=1        # 2-core CPU, < 1 h
#
# Data: CrackForest (../shared/data/crackforest), split as jacobkoenig/WeaklySupervisedCrackSeg
# does: images 073-118 test, image 042 left out (its truth is wrong), 7 of the other 70
# validate. A binary U-Net (smp, MobileNetV2 encoder, no pre-trained weights: nothing is
# downloaded), focal loss, random 128-pixel patches with flips and rotations.
#
# Variables: see common.mk.

STUDY := crack-conventions
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

SEED := $(firstword $(SEEDS))
CRACK ?= crack
ifeq ($(SMOKE),1)
TRAIN := --arch half-unet --patch-size 32 -b 2 --iterations 2
THRESHOLDS := 9
else ifeq ($(QUICK),1)
TRAIN := --arch unet --encoder mobilenet_v2 --patch-size 128 --patches-per-image 8 -b 8 \
	--epochs 60 --val-every 5 --lr 0.002 --augment flip,rot90
THRESHOLDS := 99
else
TRAIN := --arch unet --encoder mobilenet_v2 --patch-size 256 --patches-per-image 8 -b 8 \
	--epochs 200 --val-every 10 --lr 0.002 --augment flip,rot90
THRESHOLDS := 99
endif
SPLIT := $(OUT)/split.parquet
PRED := $(OUT)/pred
SCORE := $(TS) score --truth $(SPLIT) --split test --pred-classes rest,$(CRACK) -q
SWEEP := $(SCORE) --pred $(PRED)/predictions.parquet --thresholds $(THRESHOLDS)

ifeq ($(LAYOUT),pairs)
DATA_TEXT := test images 073-118, 042 left out, 7 of the other 70 validate
# CrackForest's folders; the manifest leaves out image 042 (wrong truth, as the convention)
TEST_IDS := $(shell seq -f '%03g' 73 118 | paste -sd, -)
$(OUT)/manifest.csv:
	mkdir -p $(OUT)
	{ echo "sample_id,image,mask"; for f in $(DATA)/image/*.jpg; do s=$$(basename $$f .jpg); \
	  [ "$$s" = 042 ] || echo "$$s,$$f,$(DATA)/mask/$$s.png"; done; } > $@.part && mv $@.part $@
$(SPLIT): $(OUT)/manifest.csv
	$(TS) split $< --classes background,$(CRACK) --test-ids $(TEST_IDS) --ratios 0.9,0.1 \
		--seed 0 -q -o $@ --force
else
DATA_TEXT := split 60/20/20 by group
$(SPLIT): $(DATA_DEP)
	mkdir -p $(OUT)
	$(TS) split $(SPLIT_INPUT) $(CLASS_OPTION) --ratios 0.6,0.2,0.2 --seed 0 -q -o $@ --force
endif

$(OUT)/run/best.pt: $(SPLIT)
	$(TS) train $(SPLIT) --binary $(CRACK) --loss focal $(TRAIN) --select f1 --seed $(SEED) \
		$(COMMON) -o $(OUT)/run --force
$(PRED)/predictions.parquet: $(OUT)/run/best.pt
	$(TS) infer -c $< $(SPLIT) --split test --probs $(COMMON) -o $(PRED) --force

# exact pixels at the model's threshold, then the sweeps
$(OUT)/exact.parquet: $(PRED)/predictions.parquet
	$(SCORE) --pred $(PRED) -o $@ --force
$(OUT)/sweep-exact.parquet: $(PRED)/predictions.parquet
	$(SWEEP) --per-image-mean --sweep-out $(OUT)/thresholds-exact.parquet -o $@ --force
$(OUT)/sweep-%.parquet: $(PRED)/predictions.parquet
	tolerance=$$(echo $* | cut -d- -f1 | sed 's/px$$//'); rule=$$(echo $* | cut -d- -f2); \
	thin=$$(echo $* | cut -d- -f3); \
	$(SWEEP) --tolerance $$tolerance --tolerance-rule $$rule --thin $$thin \
		--sweep-out $(OUT)/thresholds-$*.parquet -o $@ --force
.PRECIOUS: $(OUT)/sweep-%.parquet

SWEEPS := exact 2px-matched-pred 0.0075diag-matched-pred 2px-relaxed-pred \
	0.0075diag-relaxed-pred 2px-matched-both 0.0075diag-matched-both
CURVES := exact 2px-matched-pred 2px-relaxed-pred 0.0075diag-matched-both
$(OUT)/results.md: $(OUT)/exact.parquet $(foreach s,$(SWEEPS),$(OUT)/sweep-$(s).parquet)
	{ \
	echo "# One crack model, scored by each convention of the literature"; \
	echo; \
	echo "Data: $(DATA); $(DATA_TEXT)."; \
	echo "Model: binary U-Net, $(TRAIN), focal loss. Made by:"; \
	echo "make -f $(firstword $(MAKEFILE_LIST)) QUICK=$(QUICK) SMOKE=$(SMOKE), $$($(TS) --version)."; \
	echo; \
	$(TS) report $(OUT)/exact.parquet --label "threshold 0.5, exact pixels" \
		--metric f1,f2,iou,precision,recall,oii --classes $(CRACK) \
		--title "Exact pixels at the model's threshold" || exit 1; \
	echo; \
	$(TS) report $(foreach s,$(SWEEPS),$(OUT)/sweep-$(s).parquet) $(foreach s,$(SWEEPS),--label $(s)) \
		--metric ods,ods_threshold,ods_precision,ods_recall,ois,ap --classes $(CRACK) --digits 4 \
		--title "$(THRESHOLDS) thresholds: ODS, OIS, AP (tolerance-rule-thin)" || exit 1; \
	echo; \
	$(TS) report $(OUT)/sweep-exact.parquet --label "mean of per-image F, exact pixels" \
		--metric per_image_mean_f --classes $(CRACK) --digits 4 \
		--title "The other family's ODS: best mean of per-image F" || exit 1; \
	} > $@.part && mv $@.part $@
	$(TS) plot $(foreach s,$(CURVES),$(OUT)/thresholds-$(s).parquet) $(foreach s,$(CURVES),--label $(s)) \
		-q \
		-o $(OUT)/pr.png --force
	@echo "wrote $@"
