"""Losses of SPEC §6.3 as pure functions over one prepared batch (`ClassProbs`).

Conventions shared by every function here:

- A binary (one-vs-rest) model has one logit z per pixel; it is treated as the two-class
  softmax over logits (0, z), whose probabilities are (1 − σ(z), σ(z)). Pixel losses then
  see two classes (rest, positive); region losses see only the positive class.
- Ignored pixels (`valid` = 0) carry no probability mass and no target: they are left out
  of every sum, mean and soft count, and a batch with no valid pixel gives a loss of 0.
- Pixel losses with weights are weighted means Σ w_t·ℓ / Σ w_t (torch's weighted
  cross-entropy convention): weights are relative, so focal with γ = 0 *is* wce, and
  dibe-dis with α = β = 0 *is* binary focal with α_t = (1 − λ, λ).
- Region losses use batch-global soft counts (SPEC §6.3 heading; smp's default) and are
  averaged over the *region classes*: binary — the positive class (always, ε keeps an
  all-background batch defined and still penalises its false positives); multi-class —
  the selected classes (`loss_classes`, default all) that are present (≥ 1 valid pixel)
  in the batch target, weighted by α_c when class weights are given. A class absent from
  the target is skipped like in smp's DiceLoss; probability it wrongly receives still
  costs, as false negatives of the present classes (softmax sums to 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch
import torch.nn.functional as F
from torch import Tensor

# Floor for the bases of fractional powers and for Tv under a log: keeps values and
# gradients finite where the formula has an infinite slope (x**γ at 0 for γ < 1).
TINY = 1e-12
LOG_FLOOR = 1e-7


@dataclass
class ClassProbs:
    """One batch, flattened to (N, C, P) with C = 2 for a binary model."""

    logits: Tensor  # (N, C, P) float32 softmax logits
    log_p: Tensor  # (N, C, P) log-probabilities
    index: Tensor  # (N, P) int64 true class (0 at ignored pixels)
    valid: Tensor  # (N, P) float, 1 where the pixel counts
    selected: Tensor  # (C,) bool: classes region losses may average over
    class_weights: Tensor | None  # (C,) α_c, or None
    binary: bool

    @cached_property
    def onehot(self) -> Tensor:
        """(N, C, P) float one-hot target, 0 at ignored pixels (built when first needed)."""
        out = torch.zeros_like(self.log_p)
        return out.scatter_(1, self.index.unsqueeze(1), self.valid.unsqueeze(1))

    @property
    def probs(self) -> Tensor:
        """(N, C, P) probabilities, zero at ignored pixels."""
        return self.log_p.exp() * self.valid.unsqueeze(1)

    def region_mask(self) -> Tensor:
        """(C,) bool: the classes region losses average over (see the module docstring)."""
        if self.binary:
            return self.selected & (self.valid.sum() > 0)
        return self.selected & (self.onehot.sum(dim=(0, 2)) > 0)


def prepare(
    logits: Tensor,
    target: Tensor,
    *,
    binary: bool,
    ignore_index: int,
    loss_classes: tuple[int, ...] | None = None,
    class_weights: Tensor | None = None,
) -> ClassProbs:
    """Flatten logits (N, K, H, W) and target (N, H, W) into float32 `ClassProbs`."""
    n, k = logits.shape[:2]
    z = logits.float().reshape(n, k, -1)
    labels = target.reshape(n, -1)
    valid = labels != ignore_index
    if binary:
        z = torch.cat([torch.zeros_like(z), z], dim=1)
        labels = (labels == 1).long()
    index = torch.where(valid, labels, torch.zeros_like(labels)).long()
    classes = z.shape[1]
    selected = torch.zeros(classes, dtype=torch.bool, device=z.device)
    if binary:
        selected[1] = True
    elif loss_classes is None:
        selected[:] = True
    else:
        selected[list(loss_classes)] = True
    weights = None if class_weights is None else class_weights.to(z.device, torch.float32)
    return ClassProbs(
        logits=z,
        log_p=F.log_softmax(z, dim=1),
        index=index,
        valid=valid.float(),
        selected=selected,
        class_weights=weights,
        binary=binary,
    )


def safe_div(numerator: Tensor, denominator: Tensor) -> Tensor:
    """numerator / denominator, 0 where the denominator is 0 (no NaN in either pass)."""
    return numerator / torch.where(denominator > 0, denominator, torch.ones_like(denominator))


def floored_pow(base: Tensor, exponent: float) -> Tensor:
    """base**exponent with the base floored at TINY, so the slope stays finite at 0."""
    return base.clamp_min(TINY) ** exponent if exponent != 0 else torch.ones_like(base)


def log1m_softmax(logits: Tensor) -> Tensor:
    """log(1 − p_c) for every class of a softmax over dim 1, exact as p_c → 1.

    log(1 − p_c) = logsumexp_{k≠c} z_k − logsumexp_k z_k; ``log1p(-p)`` would lose the
    gradient of a confidently wrong pixel, whose p_c rounds to 1 in float32.
    """
    n, c, p = logits.shape
    if c == 2:  # 1 − p_0 = p_1: the common binary case needs no (N, C, C, P) tensor
        return F.log_softmax(logits, dim=1).flip(1)
    others = logits.unsqueeze(1).expand(n, c, c, p)
    eye = torch.eye(c, dtype=torch.bool, device=logits.device).view(1, c, c, 1)
    others = others.masked_fill(eye, float("-inf"))
    return torch.logsumexp(others, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)


# --- pixel losses -------------------------------------------------------------------


def true_class_nll(probs: ClassProbs) -> Tensor:
    """(N, P) −log p_t of the true class (0 at ignored pixels)."""
    nll = -probs.log_p.gather(1, probs.index.unsqueeze(1)).squeeze(1)
    return nll * probs.valid


def pixel_weights(probs: ClassProbs, weighted: bool) -> Tensor:
    """(N, P) α_t of each valid pixel (1 without class weights), 0 at ignored pixels."""
    if not weighted or probs.class_weights is None:
        return probs.valid
    return probs.class_weights[probs.index] * probs.valid


def weighted_pixel_mean(values: Tensor, weights: Tensor) -> Tensor:
    """Σ w·v / Σ w over all pixels; 0 when no pixel has weight."""
    return safe_div((values * weights).sum(), weights.sum())


def cross_entropy(probs: ClassProbs, weighted: bool = False) -> Tensor:
    """`ce`/`bce` (weighted=False) and `wce` (SPEC §6.3): mean of α_t·(−log p_t) / Σ α_t."""
    return weighted_pixel_mean(true_class_nll(probs), pixel_weights(probs, weighted))


def focal(probs: ClassProbs, gamma: float) -> Tensor:
    """`focal` (SPEC §6.3): Σ α_t (1 − p_t)^γ (−log p_t) / Σ α_t; γ = 0 gives `wce`."""
    nll = true_class_nll(probs)
    miss = -torch.expm1(-nll)  # 1 − p_t, exact for p_t near 1
    return weighted_pixel_mean(floored_pow(miss, gamma) * nll, pixel_weights(probs, True))


def exp_log_cross_entropy(probs: ClassProbs, gamma: float) -> Tensor:
    """Cross-entropy term of `el`: Σ λ_t (−log p_t)^γ / Σ λ_t (λ_t = class weights)."""
    nll = true_class_nll(probs)
    return weighted_pixel_mean(floored_pow(nll, gamma), pixel_weights(probs, True))


def balanced_cross_entropy(probs: ClassProbs) -> Tensor:
    """`wbce` (SPEC §6.3) with per-image weights w_c = HW / n_c.

    Per image, Σ_i w_t·ℓ_i / HW = Σ_c mean_{i in c} ℓ_i (HW = valid pixels), so the value
    does not grow with the patch size; a class absent from the image (ΣY = 0 or ΣY = HW)
    has no pixel to weigh and drops out instead of giving an infinite weight. Averaged over
    the images with at least one valid pixel. For K ≥ 2 the same weights per class.
    """
    nll = true_class_nll(probs).unsqueeze(1)
    class_sums = (probs.onehot * nll).sum(dim=2)  # (N, C)
    class_pixels = probs.onehot.sum(dim=2)
    per_image = safe_div(class_sums, class_pixels).sum(dim=1)
    images = (probs.valid.sum(dim=1) > 0).float()
    return safe_div((per_image * images).sum(), images.sum())


# --- region losses ------------------------------------------------------------------


def soft_counts(probs: ClassProbs) -> tuple[Tensor, Tensor, Tensor]:
    """Batch-global soft TP, FP, FN per class (C,) (SPEC §6.3)."""
    p, g = probs.probs, probs.onehot
    tp = (p * g).sum(dim=(0, 2))
    return tp, p.sum(dim=(0, 2)) - tp, g.sum(dim=(0, 2)) - tp


def dice_score(tp: Tensor, fp: Tensor, fn: Tensor, smooth: float) -> Tensor:
    """(2TP + ε) / (2TP + FP + FN + ε) per class."""
    return safe_div(2 * tp + smooth, 2 * tp + fp + fn + smooth)


def tversky_score(
    tp: Tensor, fp: Tensor, fn: Tensor, alpha: float, beta: float, smooth: float
) -> Tensor:
    """Tv = (TP + ε) / (TP + α·FP + β·FN + ε) per class; α weighs FP, β weighs FN."""
    return safe_div(tp + smooth, tp + alpha * fp + beta * fn + smooth)


def class_average(per_class: Tensor, probs: ClassProbs) -> Tensor:
    """Mean of per-class losses over the region classes, α_c-weighted when given."""
    weights = probs.region_mask().float()
    if probs.class_weights is not None:
        weights = weights * probs.class_weights
    return safe_div((per_class * weights).sum(), weights.sum())


def dice_loss(probs: ClassProbs, smooth: float) -> Tensor:
    """`dice`: 1 − (2TP + ε)/(2TP + FP + FN + ε), averaged over region classes."""
    return class_average(1 - dice_score(*soft_counts(probs), smooth), probs)


def tversky_loss(probs: ClassProbs, alpha: float, beta: float, smooth: float) -> Tensor:
    """`tversky`: 1 − Tv, averaged over region classes."""
    return class_average(1 - tversky_score(*soft_counts(probs), alpha, beta, smooth), probs)


def focal_tversky_loss(
    probs: ClassProbs, alpha: float, beta: float, gamma: float, smooth: float
) -> Tensor:
    """`focal-tversky`: (1 − Tv_c)^(1/γ) per class, then averaged (SPEC §6.3).

    Not smp's ``TverskyLoss(gamma=…)``, which raises the class mean to the power instead.
    """
    tv = tversky_score(*soft_counts(probs), alpha, beta, smooth)
    return class_average(floored_pow(1 - tv, 1 / gamma), probs)


def dibe_region_loss(
    probs: ClassProbs, alpha: float, beta: float, gamma: float, smooth: float
) -> Tensor:
    """`dibe-reg`: (−log Tv_c)^(1/γ) per class, then averaged (SPEC §6.3)."""
    tv = tversky_score(*soft_counts(probs), alpha, beta, smooth)
    return class_average(floored_pow(-torch.log(tv.clamp_min(LOG_FLOOR)), 1 / gamma), probs)


def exp_log_dice(probs: ClassProbs, gamma: float, smooth: float) -> Tensor:
    """Dice term of `el`: (−log Dc_c)^γ per class, then averaged."""
    dc = dice_score(*soft_counts(probs), smooth)
    return class_average(floored_pow(-torch.log(dc.clamp_min(LOG_FLOOR)), gamma), probs)


def weighted_dice_loss(probs: ClassProbs) -> Tensor:
    """`weighted-dice` (SPEC §6.3): 1 − 2 Σ_c w_c TP_c / Σ_c w_c Σ_i (g + p).

    w_c = α_c from class weights, else 1/n_c² (Sudre et al.'s generalised Dice). It is a sum
    over classes by definition, so a binary model counts both classes (1 − p, p). Classes
    absent from the batch target or not selected get w_c = 0.
    """
    tp, fp, fn = soft_counts(probs)
    pixels = tp + fn
    if probs.class_weights is None:
        weights = safe_div(torch.ones_like(pixels), pixels**2)
    else:
        weights = probs.class_weights.clone()
    selected = torch.ones_like(probs.selected) if probs.binary else probs.selected
    mask = selected & (pixels > 0)
    weights = weights * mask
    score = safe_div(2 * (weights * tp).sum(), (weights * (2 * tp + fp + fn)).sum())
    return (1 - score) * mask.any()


def dibe_distribution_per_class(
    probs: ClassProbs, alpha: float, beta: float, focal_lambda: float, gamma: float
) -> Tensor:
    """(C,) `dibe-dis` of SPEC §6.3 for each class, one-vs-rest; ŷ = 1 where p > 0.5.

    Weighted mean over pixels, normalised by Σ λ_t (λ for y = 1, 1 − λ for y = 0) so that
    α = β = 0 is exactly binary `focal` with α_t = (1 − λ, λ).
    """
    log_p = probs.log_p
    log_q = log1m_softmax(probs.logits)
    y = probs.onehot
    valid = probs.valid.unsqueeze(1)
    pred = log_p.exp() > 0.5
    p_hit = floored_pow(-torch.expm1(log_q), gamma)  # (1 − q)^γ = p^γ
    q_hit = floored_pow(-torch.expm1(log_p), gamma)  # (1 − p)^γ
    miss_fg = floored_pow(-torch.expm1((1 + alpha) * log_p), gamma) * (1 + alpha)
    miss_bg = floored_pow(-torch.expm1((1 + beta) * log_q), gamma) * (1 + beta)
    fg = focal_lambda * torch.where(pred, q_hit, miss_fg) * -log_p
    bg = (1 - focal_lambda) * torch.where(pred, miss_bg, p_hit) * -log_q
    terms = torch.where(y > 0, fg, bg) * valid
    lam = (focal_lambda * y + (1 - focal_lambda) * (1 - y)) * valid
    return safe_div(terms.sum(dim=(0, 2)), lam.sum(dim=(0, 2)))


def dibe_distribution_loss(
    probs: ClassProbs, alpha: float, beta: float, focal_lambda: float, gamma: float
) -> Tensor:
    """`dibe-dis`, averaged over region classes (binary: the positive class)."""
    per_class = dibe_distribution_per_class(probs, alpha, beta, focal_lambda, gamma)
    return class_average(per_class, probs)
