# The sliced-apple study: which loss, encoder and decoder find the rare defect class best,
# chosen step by step by F2 as the study did: (1) the losses wCE, Dice, Tversky and focal
# Tversky on U-Net/ResNet-34; (2) the encoders MobileNetV2, ResNet-34, ResNet-50 and
# EfficientNet-B0 with the best loss; (3) the decoders U-Net, U-Net++, PAN and DeepLabV3+
# with the best loss and encoder; (4) the chosen configuration trained with every seed of
# SEEDS, mean ± std. Recall, IoU, F1 and F2 per class.
#
#   make -f examples/reproduce/loss-encoder-decoder.mk QUICK=1
#   make -f examples/reproduce/loss-encoder-decoder.mk DATA=apples/manifest.parquet DEVICE=cuda
#
# PAN needs patches of at least 128 pixels (its pyramid pools the 1/32 map three times).
# Variables: see common.mk; SELECT= the class (or macro) whose F2 chooses (default macro).
# Encoders start from random weights: tinyseg downloads nothing (the study used ImageNet
# weights; pass WEIGHTS=imagenet on a machine that may download, or a local file).

STUDY := loss-encoder-decoder
include $(dir $(lastword $(MAKEFILE_LIST)))common.mk

LOSSES ?= wce dice tversky focal-tversky
ENCODERS ?= mobilenet_v2 resnet34 resnet50 efficientnet-b0
DECODERS ?= unet unetplusplus pan deeplabv3plus
FIRST_ENCODER ?= resnet34
FIRST_DECODER ?= unet
SELECT ?= macro
WEIGHTS ?= none
SEED := $(firstword $(SEEDS))
ifeq ($(SMOKE),1)
TRAIN := --patch-size 128 -b 2 --iterations 1
else ifeq ($(QUICK),1)
TRAIN := --patch-size 128 -b 4 --iterations 60 --lr 0.003
else
TRAIN := --patch-size 256 -b 8 --epochs 50
endif
METRICS := recall,iou,f1,f2
# train -> infer on val -> score, for one configuration: $(call CONFIG,dir,loss,encoder,decoder,seed)
CONFIG = $(TS) train $(OUT)/split.parquet --loss $(2) --encoder $(3) --arch $(4) --seed $(5) \
	--encoder-weights $(WEIGHTS) --class-weights $(OUT)/weights.parquet $(TRAIN) $(COMMON) \
	-o $(1)/run --force && \
	$(TS) infer -c $(1)/run/best.pt $(OUT)/split.parquet --split val $(COMMON) -o $(1)/pred \
	--force && \
	$(TS) score --truth $(OUT)/split.parquet --split val --pred $(1)/pred -q -o $(1).parquet --force

$(OUT)/split.parquet: $(DATA_DEP)
	mkdir -p $(OUT)
	$(TS) split $(SPLIT_INPUT) $(CLASS_OPTION) --ratios 0.6,0.2,0.2 --seed 0 -q -o $@ --force
# Class weights for wCE (ignored by the region losses, which weigh classes equally).
$(OUT)/weights.parquet: $(OUT)/split.parquet
	$(TS) classweights $< --scheme iscf -q -o $@ --force

# (1) losses; each step writes the choice it made, read by the next
$(OUT)/loss.choice: $(OUT)/weights.parquet
	for loss in $(LOSSES); do \
	  $(call CONFIG,$(OUT)/loss/$$loss,$$loss,$(FIRST_ENCODER),$(FIRST_DECODER),$(SEED)) || exit 1; \
	done
	$(TS) report $(foreach x,$(LOSSES),$(OUT)/loss/$(x).parquet) $(foreach x,$(LOSSES),--label $(x)) \
		--metric f2 --classes $(SELECT) --best > $@
# (2) encoders with the chosen loss
$(OUT)/encoder.choice: $(OUT)/loss.choice
	loss=$$(cat $<); for enc in $(ENCODERS); do \
	  $(call CONFIG,$(OUT)/encoder/$$enc,$$loss,$$enc,$(FIRST_DECODER),$(SEED)) || exit 1; \
	done
	$(TS) report $(foreach x,$(ENCODERS),$(OUT)/encoder/$(x).parquet) \
		$(foreach x,$(ENCODERS),--label $(x)) --metric f2 --classes $(SELECT) --best > $@
# (3) decoders with the chosen loss and encoder
$(OUT)/decoder.choice: $(OUT)/encoder.choice
	loss=$$(cat $(OUT)/loss.choice); enc=$$(cat $<); for dec in $(DECODERS); do \
	  $(call CONFIG,$(OUT)/decoder/$$dec,$$loss,$$enc,$$dec,$(SEED)) || exit 1; \
	done
	$(TS) report $(foreach x,$(DECODERS),$(OUT)/decoder/$(x).parquet) \
		$(foreach x,$(DECODERS),--label $(x)) --metric f2 --classes $(SELECT) --best > $@
# (4) the chosen configuration with every seed, scored as runs (mean ± std)
$(OUT)/seeds.parquet: $(OUT)/decoder.choice
	loss=$$(cat $(OUT)/loss.choice); enc=$$(cat $(OUT)/encoder.choice); dec=$$(cat $<); \
	for seed in $(SEEDS); do \
	  $(call CONFIG,$(OUT)/seed/$$seed,$$loss,$$enc,$$dec,$$seed) || exit 1; \
	done
	$(TS) score --truth $(OUT)/split.parquet --split val -q -o $@ --force \
		$(foreach s,$(SEEDS),--run seed$(s)=$(OUT)/seed/$(s)/pred)

$(OUT)/results.md: $(OUT)/seeds.parquet
	{ \
	echo "# Loss, encoder and decoder, chosen step by step by F2 ($(SELECT))"; \
	echo; \
	echo "Data: $(DATA). Training: $(TRAIN), encoder weights $(WEIGHTS). Made by:"; \
	echo "make -f $(firstword $(MAKEFILE_LIST)) QUICK=$(QUICK) SMOKE=$(SMOKE), $$($(TS) --version)."; \
	echo; \
	echo "The paper's protocol (on its private sliced-apple images): the same four losses,"; \
	echo "encoders and decoders in this order; its numbers are not reproduced here."; \
	echo; \
	$(TS) report $(foreach x,$(LOSSES),$(OUT)/loss/$(x).parquet) $(foreach x,$(LOSSES),--label $(x)) \
		--metric $(METRICS) --title "1. Losses ($(FIRST_DECODER), $(FIRST_ENCODER)): chosen $$(cat $(OUT)/loss.choice)" || exit 1; \
	echo; \
	$(TS) report $(foreach x,$(ENCODERS),$(OUT)/encoder/$(x).parquet) $(foreach x,$(ENCODERS),--label $(x)) \
		--metric $(METRICS) --title "2. Encoders: chosen $$(cat $(OUT)/encoder.choice)" || exit 1; \
	echo; \
	$(TS) report $(foreach x,$(DECODERS),$(OUT)/decoder/$(x).parquet) $(foreach x,$(DECODERS),--label $(x)) \
		--metric $(METRICS) --title "3. Decoders: chosen $$(cat $(OUT)/decoder.choice)" || exit 1; \
	echo; \
	$(TS) report $(OUT)/seeds.parquet --label "$$(cat $(OUT)/loss.choice), $$(cat $(OUT)/encoder.choice), $$(cat $(OUT)/decoder.choice)" \
		--metric $(METRICS) --each-run --title "4. The chosen configuration over seeds $(SEEDS)" || exit 1; \
	} > $@.part && mv $@.part $@
	@echo "wrote $@"
