"""The tune-oii search on stand-in objectives: every sequence of values is worked out by hand.

Stand-in counts use OII values worked out from SPEC §5 (TP:FP:FN):
  2:0:1 → +1 (FP = 0 < FN)        2:4:0 → −1 (FN = 0 < FP)
  2:3:3 → 0.344 (inside (0.3, 0.4)) 2:1:1 → 0.126     2:4:2 → −0.563
  3:1:1 → 0.0844 (x = 1, k = 1 − (2/π)·atan(2/15) = 0.91562, OII = 1 − k)
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinyseg_cli.commands.tune_oii.search import (
    Bisection,
    Counts,
    OiiOf,
    bisect,
    choose,
    grid,
    grid_values,
    scores_of,
    trainings_bound,
)

PLUS_ONE, MINUS_ONE = (2, 0, 1), (2, 4, 0)
INSIDE, LOW, VERY_LOW, WIGGLE = (2, 3, 3), (2, 1, 1), (2, 4, 2), (3, 1, 1)
BAND = (0.3, 0.4)
BINARY = OiiOf("class", (1,))


def counts(tp_fp_fn: tuple[int, int, int]) -> Counts:
    """Two classes; class 1 carries the given counts."""
    tp, fp, fn = tp_fp_fn
    return Counts(np.array([50, tp]), np.array([fn, fp]), np.array([fp, fn]))


def staircase(*levels: tuple[float, tuple[int, int, int]]):
    """An objective: the counts of the first level whose upper edge lies above α."""
    tried: list[float] = []

    def objective(alpha: float) -> Counts:
        tried.append(alpha)
        for edge, level in levels:
            if alpha < edge:
                return counts(level)
        raise AssertionError(f"no level for {alpha}")

    return objective, tried


def settings(**changes) -> Bisection:
    values = {"low": 0.1, "high": 0.9, "target": BAND, "tol": 0.01}
    return Bisection(**{**values, **changes})


def test_worked_oii_values_of_the_stand_in_counts():
    expected = {PLUS_ONE: 1.0, MINUS_ONE: -1.0, INSIDE: 0.344, LOW: 0.126, VERY_LOW: -0.563}
    for level, oii in expected.items():
        assert scores_of(counts(level), BINARY)["oii"] == pytest.approx(oii, abs=5e-4)
    assert scores_of(counts(WIGGLE), BINARY)["oii"] == pytest.approx(0.08438, abs=1e-5)


def test_increasing_objective_bisects_down_to_the_band():
    # OII +1 above 0.25, inside on [0.15, 0.25), -1 below: 0.5 (+1, go down), 0.3 (+1), 0.2 in.
    objective, tried = staircase((0.15, MINUS_ONE), (0.25, INSIDE), (1.0, PLUS_ONE))
    result = bisect(objective, settings(direction="raises"), BINARY)
    assert tried == pytest.approx([0.5, 0.3, 0.2])
    assert result.inside and result.reason == "inside" and result.chosen.value == pytest.approx(0.2)
    assert [s.bracket for s in result.steps] == [
        pytest.approx((0.1, 0.9)),
        pytest.approx((0.1, 0.5)),
        pytest.approx((0.1, 0.3)),
    ]
    assert [s.direction_measured for s in result.steps] == [None, None, "raises"]


def test_decreasing_objective_with_the_expected_direction_lowers():
    # dibe-dis: a larger α lowers the OII. 0.5 gives -0.563 (< m0: raise the OII, so go
    # down), 0.3 is inside.
    objective, tried = staircase((0.25, PLUS_ONE), (0.4, INSIDE), (1.0, VERY_LOW))
    result = bisect(objective, settings(direction="lowers"), BINARY)
    assert tried == pytest.approx([0.5, 0.3])
    assert result.inside and result.flips == 0


DECREASING = ((0.25, PLUS_ONE), (0.4, INSIDE), (0.6, VERY_LOW), (1.0, MINUS_ONE))


def test_direction_flip_when_the_oii_moves_the_wrong_way():
    # Prior "raises": 0.5 gives -0.563 (< m0), so go up: 0.7 gives -1, lower again by 0.437 >
    # noise: flip to "lowers"; both observations then say "below 0.5": bracket [0.1, 0.5],
    # and 0.3 is inside. One training more than without the wrong prior.
    objective, tried = staircase(*DECREASING)
    notes: list[str] = []
    result = bisect(objective, settings(direction="raises"), BINARY, on_note=notes.append)
    assert tried == pytest.approx([0.5, 0.7, 0.3])
    assert result.flips == 1 and result.inside
    assert [s.direction_expected for s in result.steps] == ["raises", "raises", "lowers"]
    assert [s.direction_measured for s in result.steps] == [None, "lowers", "lowers"]
    assert result.steps[2].bracket == pytest.approx((0.1, 0.5))
    assert len(notes) == 1 and "lowers" in notes[0]


def test_fixed_direction_does_not_flip_and_never_reaches_the_band():
    # Same objective, --direction raises: 0.5, 0.7, 0.8, 0.85, then the bracket [0.85, 0.9]
    # is no wider than tol 0.05. The step nearest the band is step 1 (-0.563).
    objective, tried = staircase(*DECREASING)
    result = bisect(objective, settings(direction="raises", auto=False, tol=0.05), BINARY)
    assert tried == pytest.approx([0.5, 0.7, 0.8, 0.85])
    assert not result.inside and result.reason == "tol" and result.flips == 0
    assert result.chosen.step == 1
    assert "kept" in result.notes[0]


def test_tolerance_bounds_the_trainings_and_never_inside_picks_the_nearest():
    # +1 from 0.42 up, 0.126 below: 0.5 (+1: down), 0.3 (0.126: up), 0.4 (0.126: up); the
    # bracket [0.4, 0.5] is then tol wide: 3 = ⌈log2(0.8 / 0.1)⌉ trainings.
    objective, tried = staircase((0.42, LOW), (1.0, PLUS_ONE))
    result = bisect(objective, settings(tol=0.1), BINARY)
    assert tried == pytest.approx([0.5, 0.3, 0.4])
    assert result.reason == "tol" and not result.inside
    assert result.trainings == trainings_bound(0.8, 0.1) == 3
    assert result.chosen.step == 2  # 0.126 is nearest the band; step 2 is the earlier tie


def test_max_steps_stops_the_search():
    objective, tried = staircase((0.42, LOW), (1.0, PLUS_ONE))
    result = bisect(objective, settings(tol=0.001, max_steps=2), BINARY)
    assert tried == pytest.approx([0.5, 0.3])
    assert result.reason == "max-steps"


WIGGLY = ((0.6, LOW), (0.8, WIGGLE), (1.0, INSIDE))


def test_a_wrong_way_move_within_the_noise_band_is_not_a_flip():
    # 0.5 → 0.126, 0.7 → 0.0844 (down by 0.042, within --noise 0.05), 0.8 inside.
    objective, tried = staircase(*WIGGLY)
    result = bisect(objective, settings(tol=0.1, noise=0.05), BINARY)
    assert tried == pytest.approx([0.5, 0.7, 0.8])
    assert result.flips == 0 and result.inside


def test_the_same_move_beyond_a_smaller_noise_band_flips():
    # With --noise 0.02 the 0.042 drop flips the search to "lowers": [0.1, 0.5] → 0.3 (0.126,
    # up from 0.0844 while the value went down: consistent) → [0.1, 0.3] → 0.2 → [0.1, 0.2].
    objective, tried = staircase(*WIGGLY)
    result = bisect(objective, settings(tol=0.1, noise=0.02), BINARY)
    assert tried == pytest.approx([0.5, 0.7, 0.3, 0.2])
    assert result.flips == 1 and not result.inside


def test_only_one_flip():
    # 0.5 → 0.126 (up, as "raises" says), 0.7 → -0.563: flip to "lowers", bracket [0.1, 0.5];
    # 0.3 → -1 moves against "lowers" too: reported, not followed (no flip back); then
    # 0.2 and 0.15 (-1 each) until [0.1, 0.15] is no wider than tol 0.05.
    objective, tried = staircase((0.4, MINUS_ONE), (0.6, LOW), (1.0, VERY_LOW))
    result = bisect(objective, settings(tol=0.05), BINARY)
    assert tried == pytest.approx([0.5, 0.7, 0.3, 0.2, 0.15])
    assert result.flips == 1 and len(result.notes) == 2 and "kept" in result.notes[1]
    assert result.chosen.step == 1 and not result.inside


def test_grid_trains_every_value_and_picks_the_one_in_the_band():
    objective, tried = staircase(*DECREASING)
    result = grid(objective, grid_values(0.1, 0.9, 4), BAND, BINARY)
    assert tried == pytest.approx([0.1, 0.3, 0.5, 0.7, 0.9])
    assert result.chosen.value == pytest.approx(0.3) and result.inside
    assert all(s.bracket is None for s in result.steps)


def test_scores_of_class_micro_and_macro():
    c = Counts(np.array([90, 2, 6]), np.array([5, 3, 2]), np.array([1, 3, 2]))
    one = scores_of(c, OiiOf("class", (1,)))
    assert one["oii"] == pytest.approx(0.344, abs=5e-4)
    assert (one["tp"], one["fp"], one["fn"]) == (2, 3, 3)
    assert one["iou"] == pytest.approx(2 / 8) and one["f2"] == pytest.approx(10 / (10 + 12 + 3))
    micro = scores_of(c, OiiOf("micro", (1, 2)))
    assert (micro["tp"], micro["fp"], micro["fn"]) == (8, 5, 5)
    assert micro["precision"] == pytest.approx(8 / 13) and micro["recall"] == pytest.approx(8 / 13)
    macro = scores_of(c, OiiOf("macro", (1, 2)))
    assert macro["precision"] == pytest.approx((2 / 5 + 6 / 8) / 2)
    # class 2 is 6:2:2 = 3:1:1 → 0.0844
    assert macro["oii"] == pytest.approx((0.34404 + 0.08438) / 2, abs=1e-4)


def test_undefined_oii_is_an_error():
    def empty(alpha: float) -> Counts:
        return Counts(np.array([10, 0]), np.array([0, 0]), np.array([0, 0]))

    with pytest.raises(ValueError, match="undefined"):
        bisect(empty, settings(), BINARY)


@pytest.mark.parametrize("tol", [0.1, 0.05, 0.01, 0.003])
def test_trainings_never_exceed_the_bound_on_a_smooth_objective(tol: float):
    # A smooth increasing OII that never enters a narrow band: the worst case for the count.
    def smooth(alpha: float) -> Counts:
        fn = round(1000 * alpha)
        return counts((200, 1000 - fn, fn))

    result = bisect(smooth, settings(tol=tol, target=(0.9990, 0.9991)), BINARY)
    assert result.trainings <= trainings_bound(0.8, tol) == math.ceil(math.log2(0.8 / tol))


def test_choose_prefers_the_band_centre():
    objective, _ = staircase((0.5, INSIDE), (1.0, LOW))
    result = grid(objective, [0.2, 0.8], BAND, BINARY)
    assert choose(result.steps, BAND).value == pytest.approx(0.2)
