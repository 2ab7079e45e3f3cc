"""Thin `nn.Module` wrappers over `_functional`: ``loss(logits, target)`` (SPEC §6.3).

logits (N, K, H, W): K = 1 for a binary (one-vs-rest) model, whose target is 1 for the
positive class; K ≥ 2 for a softmax model. target (N, H, W) int64 labels; pixels equal to
``ignore_index`` are excluded from every term. Everything is computed in float32 with
autocast off, whatever the dtype of the logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from tinyseg_cli.losses import _functional as functional
from tinyseg_cli.losses._functional import ClassProbs


class SegmentationLoss(nn.Module):
    """Base class: holds the target conventions and prepares `ClassProbs` for `compute`."""

    def __init__(
        self,
        *,
        binary: bool,
        ignore_index: int = 255,
        class_weights: Sequence[float] | None = None,
        loss_classes: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        self.binary = binary
        self.ignore_index = ignore_index
        self.loss_classes = None if loss_classes is None else tuple(int(c) for c in loss_classes)
        weights = None
        if class_weights is not None:
            weights = torch.tensor([float(w) for w in class_weights], dtype=torch.float32)
        self.register_buffer("class_weights", weights, persistent=False)

    def forward(self, logits: Tensor, target: Tensor) -> Tensor:
        """Scalar float32 loss of logits (N, K, H, W) against labels (N, H, W)."""
        if logits.dim() != 4 or target.shape != (logits.shape[0], *logits.shape[2:]):
            raise ValueError(
                f"expected logits (N, K, H, W) and target (N, H, W), "
                f"found {tuple(logits.shape)} and {tuple(target.shape)}"
            )
        if (logits.shape[1] == 1) != self.binary:
            wanted = "1 logit channel (binary)" if self.binary else "K >= 2 logit channels"
            raise ValueError(f"expected {wanted}, found {logits.shape[1]}")
        device = logits.device.type
        enabled = torch.amp.is_autocast_available(device)
        with torch.autocast(device_type=device if enabled else "cpu", enabled=False):
            probs = functional.prepare(
                logits.float(),
                target,
                binary=self.binary,
                ignore_index=self.ignore_index,
                loss_classes=self.loss_classes,
                class_weights=self.class_weights,
            )
            return self.compute(probs)

    def compute(self, probs: ClassProbs) -> Tensor:
        """The loss of one prepared batch."""
        raise NotImplementedError


class CrossEntropyLoss(SegmentationLoss):
    """`ce`, `bce` (weighted=False) and `wce` (weighted=True, α_t from class weights)."""

    def __init__(self, *, weighted: bool = False, **common) -> None:
        super().__init__(**common)
        self.weighted = weighted

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.cross_entropy(probs, weighted=self.weighted)


class FocalLoss(SegmentationLoss):
    """`focal`: −α_t (1 − p_t)^γ log p_t, weighted mean (γ = 0 is `wce`).

    Hand-written: torchvision's ``sigmoid_focal_loss`` uses a scalar α and a plain mean,
    which does not reduce to `wce` at γ = 0, and has no ignore label.
    """

    def __init__(self, *, gamma: float = 2.0, **common) -> None:
        super().__init__(**common)
        self.gamma = gamma

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.focal(probs, self.gamma)


class BalancedCrossEntropyLoss(SegmentationLoss):
    """`wbce`: per-image inverse-frequency weighted cross-entropy, mean over the batch."""

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.balanced_cross_entropy(probs)


# Region losses are hand-written rather than smp's DiceLoss/TverskyLoss: smp divides by all
# classes (absent ones count as 0), uses ε/2 in its Dice and raises the class mean to γ.


class DiceLoss(SegmentationLoss):
    """`dice`: 1 − (2TP + ε)/(2TP + FP + FN + ε) per class, averaged."""

    def __init__(self, *, smooth: float = 1.0, **common) -> None:
        super().__init__(**common)
        self.smooth = smooth

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.dice_loss(probs, self.smooth)


class TverskyLoss(SegmentationLoss):
    """`tversky`: 1 − (TP + ε)/(TP + αFP + βFN + ε) per class, averaged."""

    def __init__(
        self, *, alpha: float = 0.3, beta: float = 0.7, smooth: float = 1.0, **common
    ) -> None:
        super().__init__(**common)
        self.alpha, self.beta, self.smooth = alpha, beta, smooth

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.tversky_loss(probs, self.alpha, self.beta, self.smooth)


class FocalTverskyLoss(TverskyLoss):
    """`focal-tversky`: (1 − Tv)^(1/γ) per class, then averaged."""

    def __init__(self, *, gamma: float = 0.75, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gamma = gamma

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.focal_tversky_loss(probs, self.alpha, self.beta, self.gamma, self.smooth)


class WeightedDiceLoss(SegmentationLoss):
    """`weighted-dice`: generalised Dice, w_c = class weights or 1/n_c²."""

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.weighted_dice_loss(probs)


class DibeDistributionLoss(SegmentationLoss):
    """`dibe-dis`: the focal-based distribution term of SPEC §6.3 (α = β = 0: focal)."""

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        beta: float = 0.7,
        focal_lambda: float = 0.75,
        gamma: float = 2.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.alpha, self.beta, self.focal_lambda, self.gamma = alpha, beta, focal_lambda, gamma

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.dibe_distribution_loss(
            probs, self.alpha, self.beta, self.focal_lambda, self.gamma
        )


class DibeRegionLoss(TverskyLoss):
    """`dibe-reg`: (−log Tv)^(1/γ) per class, then averaged."""

    def __init__(self, *, gamma: float = 1.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.gamma = gamma

    def compute(self, probs: ClassProbs) -> Tensor:
        return functional.dibe_region_loss(probs, self.alpha, self.beta, self.gamma, self.smooth)


class DibeLoss(SegmentationLoss):
    """`dibe`: θ·dibe-dis + (1 − θ)·dibe-reg with one α (β = 1 − α), λ and γ."""

    def __init__(
        self,
        *,
        theta: float = 0.5,
        alpha: float = 0.3,
        focal_lambda: float = 0.75,
        gamma: float = 2.0,
        smooth: float = 1.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.theta, self.alpha, self.focal_lambda = theta, alpha, focal_lambda
        self.gamma, self.smooth = gamma, smooth

    def compute(self, probs: ClassProbs) -> Tensor:
        beta = 1 - self.alpha
        dis = functional.dibe_distribution_loss(
            probs, self.alpha, beta, self.focal_lambda, self.gamma
        )
        reg = functional.dibe_region_loss(probs, self.alpha, beta, self.gamma, self.smooth)
        return self.theta * dis + (1 - self.theta) * reg


class ComboLoss(SegmentationLoss):
    """`combo`: θ·wbce + (1 − θ)·dice."""

    def __init__(self, *, theta: float = 0.5, smooth: float = 1.0, **common) -> None:
        super().__init__(**common)
        self.theta, self.smooth = theta, smooth

    def compute(self, probs: ClassProbs) -> Tensor:
        wbce = functional.balanced_cross_entropy(probs)
        return self.theta * wbce + (1 - self.theta) * functional.dice_loss(probs, self.smooth)


class ExpLogLoss(SegmentationLoss):
    """`el`: θ·mean(λ_t(−log p_t)^γce) + (1 − θ)·mean_c (−log Dc_c)^γdc (Wong et al.)."""

    def __init__(
        self,
        *,
        theta: float = 0.2,
        gamma_ce: float = 0.3,
        gamma_dice: float = 0.3,
        smooth: float = 1.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.theta, self.gamma_ce, self.gamma_dice, self.smooth = (
            theta,
            gamma_ce,
            gamma_dice,
            smooth,
        )

    def compute(self, probs: ClassProbs) -> Tensor:
        ce = functional.exp_log_cross_entropy(probs, self.gamma_ce)
        dice = functional.exp_log_dice(probs, self.gamma_dice, self.smooth)
        return self.theta * ce + (1 - self.theta) * dice


class HybridFocalLoss(SegmentationLoss):
    """`hf`: θ·focal(γ) + (1 − θ)·focal-tversky(α, β, γ_tversky)."""

    def __init__(
        self,
        *,
        theta: float = 0.5,
        gamma: float = 2.0,
        alpha: float = 0.3,
        beta: float = 0.7,
        gamma_tversky: float = 0.75,
        smooth: float = 1.0,
        **common,
    ) -> None:
        super().__init__(**common)
        self.theta, self.gamma, self.alpha, self.beta = theta, gamma, alpha, beta
        self.gamma_tversky, self.smooth = gamma_tversky, smooth

    def compute(self, probs: ClassProbs) -> Tensor:
        focal = functional.focal(probs, self.gamma)
        tversky = functional.focal_tversky_loss(
            probs, self.alpha, self.beta, self.gamma_tversky, self.smooth
        )
        return self.theta * focal + (1 - self.theta) * tversky
