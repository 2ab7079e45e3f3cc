"""Losses of SPEC §6.3 against values worked out by hand, special cases and gradients.

Expected values come from the SPEC formulas written out per pixel in plain Python (the
`ref_*` functions below, float64 math on the inputs), or from closed forms at p = 0.5.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys

import pytest
import torch

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.losses import LOSSES, build_loss, param_defaults

IGNORE = 255
ALL = list(LOSSES)
MULTI = [n for n in ALL if not LOSSES[n].binary_only]
# (name, K) pairs that exist: binary-only losses have no K = 3 case.
NAME_K = [(n, k) for n in ALL for k in (1, 3) if k == 1 or n in MULTI]
NAME_BINARY = [(n, b) for n in ALL for b in (True, False) if b or n in MULTI]


# (name, weights) pairs that exist: wce cannot run without class weights.
def weighted(names: list[str]) -> list[tuple[str, bool]]:
    return [(n, w) for n in names for w in (True, False) if w or n != "wce"]


# Hyper-parameters given explicitly (some off their defaults, to see they are used).
PARAMS = {
    "focal": {"gamma": 2.0},
    "dice": {"smooth": 1.0},
    "tversky": {"alpha": 0.3, "beta": 0.7, "smooth": 1.0},
    "focal-tversky": {"alpha": 0.3, "beta": 0.7, "gamma": 0.75, "smooth": 1.0},
    "dibe-dis": {"alpha": 0.3, "beta": 0.6, "focal_lambda": 0.75, "gamma": 2.0},
    "dibe-reg": {"alpha": 0.3, "beta": 0.7, "gamma": 1.5, "smooth": 1.0},
    "dibe": {"theta": 0.4, "alpha": 0.3, "focal_lambda": 0.75, "gamma": 2.0, "smooth": 1.0},
    "combo": {"theta": 0.5, "smooth": 1.0},
    "el": {"theta": 0.2, "gamma_ce": 0.3, "gamma_dice": 0.3, "smooth": 1.0},
    "hf": {"theta": 0.5, "gamma": 2.0, "alpha": 0.3, "beta": 0.7, "gamma_tversky": 0.75},
}
BINARY_WEIGHTS = [0.25, 0.75]
MULTI_WEIGHTS = [0.2, 1.0, 1.8]

# 1×1×2×2 binary example: a hit, a true negative, a missed positive, a false positive.
BIN_LOGITS = [[[[1.5, -0.5], [-1.0, 0.8]]]]
BIN_TARGET = [[[1, 0], [1, 0]]]
# 1×3×2×2 example; class 2 is rare (one pixel) and the third pixel is wrong.
MC_LOGITS = [[[[2.0, 0.1], [0.3, 1.0]], [[0.5, 1.2], [0.9, -0.4]], [[-1.0, 0.2], [0.4, 0.6]]]]
MC_TARGET = [[[0, 1], [2, 0]]]


def make_loss(name, binary, weights=True, params=None, n_classes=3):
    cw = None
    if weights and LOSSES[name].class_weights != "unused":
        cw = BINARY_WEIGHTS if binary else MULTI_WEIGHTS[:n_classes]
    return build_loss(
        name,
        n_classes=1 if binary else n_classes,
        binary=binary,
        class_weights=cw,
        params=PARAMS.get(name, {}) if params is None else params,
        ignore_index=IGNORE,
    )


def value(loss, logits, target) -> float:
    return float(loss(torch.tensor(logits), torch.tensor(target)))


# --- reference formulas (plain Python) -------------------------------------------------


def pixels(logits, target, binary):
    """[(image, class probabilities, true class)] for the valid pixels."""
    out = []
    for n, (zs, ts) in enumerate(zip(logits, target, strict=True)):
        for y, row in enumerate(ts):
            for x, t in enumerate(row):
                if t == IGNORE:
                    continue
                z = [channel[y][x] for channel in zs]
                if binary:
                    p = 1 / (1 + math.exp(-z[0]))
                    out.append((n, (1 - p, p), int(t == 1)))
                else:
                    e = [math.exp(v) for v in z]
                    out.append((n, tuple(v / sum(e) for v in e), t))
    return out


def ref_wmean(pix, per_pixel, weights):
    w = [weights[t] if weights else 1.0 for _, _, t in pix]
    return sum(wi * per_pixel(pr, t) for wi, (_, pr, t) in zip(w, pix, strict=True)) / sum(w)


def ref_focal(pix, gamma, weights):
    return ref_wmean(pix, lambda pr, t: (1 - pr[t]) ** gamma * -math.log(pr[t]), weights)


def ref_wbce(pix):
    images = sorted({n for n, _, _ in pix})
    total = 0.0
    for n in images:
        for c in {t for m, _, t in pix if m == n}:
            nll = [-math.log(pr[t]) for m, pr, t in pix if m == n and t == c]
            total += sum(nll) / len(nll)
    return total / len(images)


def ref_counts(pix, c):
    tp = sum(pr[c] for _, pr, t in pix if t == c)
    fp = sum(pr[c] for _, pr, t in pix if t != c)
    fn = sum(1 - pr[c] for _, pr, t in pix if t == c)
    return tp, fp, fn


def ref_region(pix, binary, per_class, weights):
    """Average of per_class(tp, fp, fn) over positive (binary) or present classes."""
    classes = [1] if binary else sorted({t for _, _, t in pix})
    w = {c: (weights[c] if weights and not binary else 1.0) for c in classes}
    total = sum(w[c] * per_class(*ref_counts(pix, c)) for c in classes)
    return total / sum(w.values())


def ref_tv(a, b, s):
    return lambda tp, fp, fn: (tp + s) / (tp + a * fp + b * fn + s)


def ref_dice(s):
    return lambda tp, fp, fn: (2 * tp + s) / (2 * tp + fp + fn + s)


def ref_dibe_dis(pix, binary, a, b, lam, gamma, weights):
    def per_class(c):
        num = den = 0.0
        for _, pr, t in pix:
            p = pr[c]
            q = 1 - p
            if t == c:
                f = q**gamma if p > 0.5 else (1 - p ** (1 + a)) ** gamma * (1 + a)
                num, den = num - lam * f * math.log(p), den + lam
            else:
                f = p**gamma if p <= 0.5 else (1 - q ** (1 + b)) ** gamma * (1 + b)
                num, den = num - (1 - lam) * f * math.log(q), den + 1 - lam
        return num / den

    classes = [1] if binary else sorted({t for _, _, t in pix})
    w = {c: (weights[c] if weights and not binary else 1.0) for c in classes}
    return sum(w[c] * per_class(c) for c in classes) / sum(w.values())


def ref_weighted_dice(pix, binary, weights):
    classes = sorted({t for _, _, t in pix})
    w = {c: weights[c] if weights else 1 / sum(1 for *_, t in pix if t == c) ** 2 for c in classes}
    counts = {c: ref_counts(pix, c) for c in classes}
    num = 2 * sum(w[c] * counts[c][0] for c in classes)
    den = sum(w[c] * (2 * counts[c][0] + counts[c][1] + counts[c][2]) for c in classes)
    return 1 - num / den


def reference(name, logits, target, binary, weights):
    """The loss of SPEC §6.3 written out per pixel, with the PARAMS above."""
    pix = pixels(logits, target, binary)
    cw = weights if LOSSES[name].class_weights != "unused" else None
    prm = PARAMS.get(name, {})
    nll = lambda pr, t: -math.log(pr[t])  # noqa: E731
    region = lambda fn: ref_region(pix, binary, fn, cw)  # noqa: E731
    if name in ("ce", "bce"):
        return ref_wmean(pix, nll, None)
    if name == "wce":
        return ref_wmean(pix, nll, cw)
    if name == "focal":
        return ref_focal(pix, prm["gamma"], cw)
    if name == "wbce":
        return ref_wbce(pix)
    if name == "dice":
        return region(lambda *k: 1 - ref_dice(1.0)(*k))
    if name == "tversky":
        return region(lambda *k: 1 - ref_tv(0.3, 0.7, 1.0)(*k))
    if name == "focal-tversky":
        return region(lambda *k: (1 - ref_tv(0.3, 0.7, 1.0)(*k)) ** (1 / 0.75))
    if name == "weighted-dice":
        return ref_weighted_dice(pix, binary, cw)
    if name == "dibe-dis":
        return ref_dibe_dis(pix, binary, 0.3, 0.6, 0.75, 2.0, cw)
    if name == "dibe-reg":
        return region(lambda *k: (-math.log(ref_tv(0.3, 0.7, 1.0)(*k))) ** (1 / 1.5))
    if name == "dibe":
        dis = ref_dibe_dis(pix, binary, 0.3, 0.7, 0.75, 2.0, cw)
        reg = region(lambda *k: (-math.log(ref_tv(0.3, 0.7, 1.0)(*k))) ** (1 / 2.0))
        return 0.4 * dis + 0.6 * reg
    if name == "combo":
        return 0.5 * ref_wbce(pix) + 0.5 * region(lambda *k: 1 - ref_dice(1.0)(*k))
    if name == "el":
        ce = ref_wmean(pix, lambda pr, t: (-math.log(pr[t])) ** 0.3, cw)
        return 0.2 * ce + 0.8 * region(lambda *k: (-math.log(ref_dice(1.0)(*k))) ** 0.3)
    assert name == "hf"
    ft = region(lambda *k: (1 - ref_tv(0.3, 0.7, 1.0)(*k)) ** (1 / 0.75))
    return 0.5 * ref_focal(pix, 2.0, cw) + 0.5 * ft


# --- values ------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "weights"), weighted(ALL))
def test_binary_value_by_hand(name, weights):
    expected = reference(name, BIN_LOGITS, BIN_TARGET, True, BINARY_WEIGHTS if weights else None)
    got = value(make_loss(name, True, weights), BIN_LOGITS, BIN_TARGET)
    assert got == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize("target", [MC_TARGET, [[[0, 1], [1, 0]]]], ids=["all", "absent"])
@pytest.mark.parametrize(("name", "weights"), weighted(MULTI))
def test_multiclass_value_by_hand(name, weights, target):
    expected = reference(name, MC_LOGITS, target, False, MULTI_WEIGHTS if weights else None)
    assert value(make_loss(name, False, weights), MC_LOGITS, target) == pytest.approx(
        expected, rel=1e-5
    )


def test_two_image_batch_matches_reference():
    logits = [BIN_LOGITS[0], [[[0.2, -2.0], [-0.3, -1.2]]]]
    target = [BIN_TARGET[0], [[0, 0], [0, 0]]]  # second image has no positive pixel
    for name in ("wbce", "dice", "dibe", "combo"):
        expected = reference(name, logits, target, True, BINARY_WEIGHTS)
        assert value(make_loss(name, True), logits, target) == pytest.approx(expected, rel=1e-5)


def test_closed_forms_at_one_half():
    # p = 0.5 everywhere, one positive of four: TP = 0.5, FP = 1.5, FN = 0.5.
    logits, target = [[[[0.0, 0.0], [0.0, 0.0]]]], [[[1, 0], [0, 0]]]
    ln2 = math.log(2)
    expected = {
        "ce": ln2,
        "focal": ln2 / 4,  # (1 - 0.5)^2 ln 2, any α_t
        "wbce": 2 * ln2,  # mean over positives + mean over negatives
        "dice": 1 - 2 / 4,  # (2·0.5 + 1) / (1 + 1.5 + 0.5 + 1)
        "tversky": 1 - 1.5 / 2.3,  # (0.5 + 1) / (0.5 + 0.3·1.5 + 0.7·0.5 + 1)
    }
    for name, v in expected.items():
        assert value(make_loss(name, True), logits, target) == pytest.approx(v, rel=1e-6)


# --- special cases of SPEC §6.3 ---------------------------------------------------------


@pytest.mark.parametrize("binary", [True, False])
def test_tversky_half_half_is_dice(binary):
    logits, target = (BIN_LOGITS, BIN_TARGET) if binary else (MC_LOGITS, MC_TARGET)
    for eps in (0.0, 1.0):
        tv = make_loss("tversky", binary, params={"alpha": 0.5, "beta": 0.5, "smooth": eps})
        # (TP+ε)/(TP+½FP+½FN+ε) = (2TP+2ε)/(2TP+FP+FN+2ε): equal for ε = 0, else dice(2ε)
        dice = make_loss("dice", binary, params={"smooth": 2 * eps})
        assert value(tv, logits, target) == pytest.approx(value(dice, logits, target), rel=1e-6)


def test_dibe_dis_without_penalties_is_binary_focal():
    for lam, gamma in ((0.75, 2.0), (0.5, 1.0), (0.9, 0.0)):
        dis = make_loss(
            "dibe-dis", True, params={"alpha": 0, "beta": 0, "focal_lambda": lam, "gamma": gamma}
        )
        focal = build_loss(
            "focal",
            n_classes=1,
            binary=True,
            class_weights=[1 - lam, lam],
            params={"gamma": gamma},
            ignore_index=IGNORE,
        )
        assert value(dis, BIN_LOGITS, BIN_TARGET) == pytest.approx(
            value(focal, BIN_LOGITS, BIN_TARGET), rel=1e-6
        )


@pytest.mark.parametrize("binary", [True, False])
def test_focal_gamma_zero_is_wce_exactly(binary):
    logits, target = (BIN_LOGITS, BIN_TARGET) if binary else (MC_LOGITS, MC_TARGET)
    focal = value(make_loss("focal", binary, params={"gamma": 0.0}), logits, target)
    wce = value(make_loss("wce", binary), logits, target)
    assert focal == wce
    el = make_loss("el", binary, params={"theta": 1.0, "gamma_ce": 1.0})
    assert value(el, logits, target) == pytest.approx(wce, rel=1e-6)


def test_bce_is_ce_of_a_binary_model():
    assert value(make_loss("bce", True), BIN_LOGITS, BIN_TARGET) == value(
        make_loss("ce", True), BIN_LOGITS, BIN_TARGET
    )


def test_loss_classes_restrict_region_terms():
    only2 = make_loss("dice", False, weights=False, params={"loss_classes": [2]})
    pix = pixels(MC_LOGITS, MC_TARGET, False)
    expected = 1 - ref_dice(1.0)(*ref_counts(pix, 2))
    assert value(only2, MC_LOGITS, MC_TARGET) == pytest.approx(expected, rel=1e-6)


# --- gradients, ignore label, stability ------------------------------------------------


@pytest.mark.parametrize(("name", "k"), NAME_K)
def test_raising_the_true_logit_lowers_the_loss(name, k):
    gen = torch.Generator().manual_seed(3)
    logits = torch.randn(2, k, 4, 4, generator=gen).requires_grad_()
    target = torch.randint(0, max(k, 2), (2, 4, 4), generator=gen)
    target[0, 0, :2] = IGNORE
    make_loss(name, k == 1, n_classes=max(k, 2))(logits, target).backward()
    valid = target != IGNORE
    if k == 1:  # d loss / d(logit of the true class): +z for positives, -z for negatives
        slope = logits.grad[:, 0] * torch.where(target == 1, 1.0, -1.0)
    else:
        slope = logits.grad.gather(1, target.clamp(max=k - 1).unsqueeze(1)).squeeze(1)
    assert (slope[valid] <= 1e-9).all()
    assert slope[valid].sum() < 0
    assert (logits.grad.permute(1, 0, 2, 3)[:, ~valid] == 0).all()


@pytest.mark.parametrize(("name", "binary"), NAME_BINARY)
def test_ignored_pixels_have_no_effect(name, binary):
    logits, target = (BIN_LOGITS, BIN_TARGET) if binary else (MC_LOGITS, MC_TARGET)
    base = torch.tensor(logits)
    extra = torch.cat([base, torch.full((1, base.shape[1], 2, 1), 4.0)], dim=3).requires_grad_()
    padded = torch.cat([torch.tensor(target), torch.full((1, 2, 1), IGNORE)], dim=2)
    loss = make_loss(name, binary)
    out = loss(extra, padded)
    out.backward()
    assert float(out.detach()) == pytest.approx(value(loss, logits, target), rel=1e-6)
    assert (extra.grad[..., 2] == 0).all()


@pytest.mark.parametrize(("name", "k"), NAME_K)
def test_all_ignored_batch_is_zero_with_grad(name, k):
    logits = torch.randn(2, k, 3, 3, requires_grad=True)
    out = make_loss(name, k == 1)(logits, torch.full((2, 3, 3), IGNORE))
    out.backward()
    assert out.item() == 0.0
    assert torch.isfinite(logits.grad).all() and (logits.grad == 0).all()


@pytest.mark.parametrize(("name", "k"), NAME_K)
def test_extreme_logits_stay_finite(name, k):
    logits = torch.randn(1, k, 4, 4, generator=torch.Generator().manual_seed(1)) * 80
    logits.requires_grad_()
    target = torch.randint(0, max(k, 2), (1, 4, 4), generator=torch.Generator().manual_seed(2))
    out = make_loss(name, k == 1)(logits, target)
    out.backward()
    assert torch.isfinite(out) and torch.isfinite(logits.grad).all()


def test_float32_under_autocast_and_half_inputs():
    logits = torch.tensor(MC_LOGITS)
    loss = make_loss("dibe", False)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(logits.bfloat16(), torch.tensor(MC_TARGET))
    assert out.dtype == torch.float32
    assert float(out) == pytest.approx(value(loss, MC_LOGITS, MC_TARGET), rel=2e-2)


# --- registry -----------------------------------------------------------------------------


def test_registry_defaults_follow_the_spec():
    d = {name: spec.defaults() for name, spec in LOSSES.items()}
    assert set(LOSSES) == {
        "ce", "wce", "focal", "bce", "wbce", "dice", "tversky", "focal-tversky",
        "weighted-dice", "dibe-dis", "dibe-reg", "dibe", "combo", "el", "hf",
    }  # fmt: skip
    assert d["focal"]["gamma"] == 2 and d["dice"]["smooth"] == 1
    assert d["focal-tversky"]["gamma"] == 0.75 and d["dibe-reg"]["gamma"] == 1.5
    assert (d["dibe"]["theta"], d["dibe"]["focal_lambda"], d["dibe"]["gamma"]) == (0.5, 0.75, 2)
    assert d["dibe"]["alpha"] == 0.3
    for spec in LOSSES.values():
        assert all(p.help and p.option.startswith("--") for p in spec.params)
        loss = make_loss(spec.name, True, params={}) if spec.binary_only else None
        loss = loss or make_loss(spec.name, False, params={})
        json.dumps(loss.config)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "nope"}, "expected one of ce"),
        ({"name": "bce"}, "expected a binary model"),
        ({"name": "wce", "class_weights": None}, "expected class weights"),
        ({"name": "dice", "class_weights": [1.0, 2.0]}, "expected 3 values, found 2"),
        ({"name": "dice", "class_weights": [1.0, -2.0, 1.0]}, "finite values >= 0"),
        ({"name": "dice", "params": {"alpha": 0.3}}, "found --alpha"),
        ({"name": "tversky", "params": {"alpha": -1}}, "--alpha: expected a number"),
        ({"name": "focal-tversky", "params": {"gamma": 0}}, "expected a number > 0"),
        ({"name": "dibe", "params": {"focal_lambda": 2}}, "--focal-lambda"),
        ({"name": "dice", "params": {"loss_classes": [3]}}, "class indices in [0, 2]"),
        ({"name": "dice", "binary": True, "params": {"loss_classes": [1]}}, "multi-class"),
    ],
)
def test_build_loss_errors(kwargs, message):
    args = {
        "n_classes": 3,
        "binary": False,
        "class_weights": MULTI_WEIGHTS,
        "params": {},
        "ignore_index": IGNORE,
    } | kwargs
    if args["binary"] and args["class_weights"] == MULTI_WEIGHTS:
        args["class_weights"] = BINARY_WEIGHTS
    with pytest.raises(TinysegError, match=re.escape(message)):
        build_loss(**args)


def test_none_params_take_defaults():
    loss = build_loss(
        "tversky", n_classes=2, binary=False, class_weights=None,
        params={"alpha": None, "gamma": None}, ignore_index=IGNORE,
    )  # fmt: skip
    assert loss.config["params"] == {"alpha": 0.3, "beta": 0.7, "smooth": 1.0, "loss_classes": None}


def test_aliases_and_class_names():
    loss = build_loss(
        "dibe", n_classes=3, binary=False, class_weights=None, ignore_index=IGNORE,
        params={"lambda": 0.6, "classes": "pore, 1"}, class_names=["bg", "crack", "pore"],
    )  # fmt: skip
    assert loss.config["params"]["focal_lambda"] == 0.6
    assert loss.config["params"]["loss_classes"] == [1, 2]
    with pytest.raises(TinysegError, match="expected a class index or one of bg, crack, pore"):
        build_loss(
            "dice", n_classes=3, binary=False, class_weights=None, ignore_index=IGNORE,
            params={"loss_classes": "skin"}, class_names=["bg", "crack", "pore"],
        )  # fmt: skip


def test_names_import_without_torch():
    code = "import sys, tinyseg_cli.losses as L; assert L.LOSSES; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert param_defaults("gamma")["focal-tversky"] == 0.75


def test_wrong_channel_count_is_a_clear_error():
    loss = make_loss("dice", False)
    with pytest.raises(ValueError, match="K >= 2"):
        loss(torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))


# --- overfitting a free tensor of logits ---------------------------------------------------


def f2(pred: torch.Tensor, truth: torch.Tensor) -> float:
    tp = float((pred & truth).sum())
    fp, fn = float((pred & ~truth).sum()), float((~pred & truth).sum())
    return 5 * tp / (5 * tp + 4 * fn + fp) if tp + fp + fn else 0.0


@pytest.mark.parametrize(("name", "k"), NAME_K)
def test_minimising_each_loss_finds_the_rare_class(name, k):
    rare = 1 if k == 1 else 2
    target = torch.zeros(1, 8, 8, dtype=torch.long)
    target[0, 2, 3] = target[0, 5, 6] = target[0, 6, 1] = rare
    if k == 3:
        target[0, :2, :6] = 1
    target[0, 7, 7] = IGNORE
    init = torch.randn(1, k, 8, 8, generator=torch.Generator().manual_seed(0)) * 0.1
    init[:, 0] += -2.0 if k == 1 else 2.0  # start predicting background everywhere
    logits = init.clone().requires_grad_()
    loss = make_loss(name, k == 1)
    opt = torch.optim.Adam([logits], lr=0.1)
    first = loss(logits, target).item()

    def predicted(z):
        return (z[0, 0] > 0) if k == 1 else z[0].argmax(0) == rare

    truth = target[0] == rare
    before = f2(predicted(init), truth)
    for _ in range(100):
        opt.zero_grad()
        loss(logits, target).backward()
        opt.step()
    assert loss(logits, target).item() < first
    assert before == 0.0 and f2(predicted(logits.detach()), truth) > 0.9
