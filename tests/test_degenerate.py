"""A degenerate model is named (issue 20): train warns when the checkpoint it keeps as best
predicts one class on >= 95 % of the validation pixels (where the truth does not) or never
predicts background; infer warns when a whole map is one foreground class."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.test_train import TINY, write_split
from tinyseg_cli.commands.train.common import degenerate_prediction

NAMES = ("background", "scratch", "pit")


@pytest.mark.parametrize(
    ("predicted", "truth", "expected"),
    [
        ([0, 100, 0], [95, 4, 1], "predicts scratch on 100.0% of the validation pixels, where "
         "the truth has 4.0%"),
        ([3, 96, 1], [90, 9, 1], "predicts scratch on 96.0%"),
        ([0, 60, 40], [90, 9, 1], "never predicts background, which is 90.0%"),
        ([96, 3, 1], [98, 1, 1], None),  # mostly background, as the truth: a fine model
        ([99, 1, 0], [99, 1, 0], None),
        ([0, 0, 0], [99, 1, 0], None),  # nothing predicted: nothing to say
    ],
)  # fmt: skip
def test_degenerate_prediction_by_hand(predicted, truth, expected):
    found = degenerate_prediction(predicted, truth, NAMES)
    if expected is None:
        assert found is None
    else:
        assert found is not None and expected in found


def test_train_names_a_degenerate_best_checkpoint_and_infer_a_one_class_map(cli, tmp_path: Path):
    """Weights that count only scratch drive every pixel to scratch within a few steps."""
    split = write_split(tmp_path)
    weights = tmp_path / "w.parquet"
    pq.write_table(
        pa.table({"class_index": [0, 1, 2], "class_name": list(NAMES), "weight": [0.0, 1, 0]}),
        weights,
    )
    run = tmp_path / "run"
    result = cli(
        "train", split, *TINY, "--loss", "wce", "--class-weights", weights, "--iterations",
        "6", "--lr", "0.01", "--json", "-o", run,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "warning: best.pt (step 6) predicts scratch on 100.0% of the validation pixels" in (
        result.stderr
    )
    assert json.loads(result.stdout)["epochs"] == 1  # 6 steps are one whole epoch
    pred = tmp_path / "pred"
    inferred = cli("infer", "--checkpoint", run / "best.pt", split, "--split", "val", "-o", pred)
    assert inferred.exit_code == 0, inferred.output
    assert "2 prediction(s) are one foreground class over the whole image: s6 (scratch), " in (
        inferred.stderr
    )
