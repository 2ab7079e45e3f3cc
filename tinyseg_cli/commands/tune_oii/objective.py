"""The objective ``tune-oii`` hands its search: train at a value, predict the val split, score.

Each step is a real ``train`` → ``infer`` → ``score`` run through the code those commands
use, in ``TUNE_DIR/step-<k>/``: ``run/`` (checkpoints and training log), ``pred/`` (the val
predictions and their table) and ``scores.parquet`` / ``counts.parquet``. Finished steps of
an earlier run are replayed from the log; an interrupted step continues from its ``last.pt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tinyseg_cli.commands.infer import run as infer
from tinyseg_cli.commands.train.image.plan import TrainPlan
from tinyseg_cli.commands.train.loop import Trainer
from tinyseg_cli.commands.tune_oii.search import Counts
from tinyseg_cli.commands.tune_oii.settings import SearchedParam
from tinyseg_cli.data.samples import Sample
from tinyseg_cli.errors import TinysegError
from tinyseg_cli.inference.predict import TileOptions
from tinyseg_cli.io.checkpoint import load_checkpoint
from tinyseg_cli.io.provenance import provenance
from tinyseg_cli.io.sources import MapRef
from tinyseg_cli.io.tables import write_table
from tinyseg_cli.runtime.distributed import Distributed
from tinyseg_cli.scoring.counts import counts_from_matrices
from tinyseg_cli.scoring.pairs import CountOptions, count_pairs, pair_maps
from tinyseg_cli.scoring.results import result_counts_table, result_table, score_counts

RUN, PRED, SCORES, COUNTS = "run", "pred", "scores.parquet", "counts.parquet"


@dataclass
class TuneJob:
    """What every step shares: the validated plan, the val rows and where steps go."""

    plan: TrainPlan  # validated once; each step replaces its options
    param: SearchedParam
    tune_dir: Path
    val: list[Sample]
    device: torch.device
    dist: Distributed
    warm_epochs: int | None = None  # --warm-start: steps after the first fine-tune this long
    jobs: int = 1
    argv: list[str] = field(default_factory=list)


def step_dir(tune_dir: Path, number: int) -> Path:
    return tune_dir / f"step-{number}"


def one_vs_rest_matrix(matrix: np.ndarray, index: int) -> np.ndarray:
    """A confusion matrix of source truth × binary prediction (0 rest, 1 class ``index``)
    as the 2×2 matrix of a one-vs-rest model."""
    positive = matrix[index, :2]
    negative = matrix[:, :2].sum(axis=0) - positive
    return np.stack([negative, positive]).astype(np.int64)


class StepObjective:
    """value → validation counts; the k-th call is step k of the search."""

    def __init__(
        self,
        job: TuneJob,
        train: Callable[[Trainer, int], None],
        replay: list[tuple[float, Counts]] | None = None,
    ) -> None:
        self.job, self.train, self.replay = job, train, list(replay or [])
        self.calls = 0

    def __call__(self, value: float) -> Counts:
        self.calls += 1
        number = self.calls
        if number <= len(self.replay):
            logged, counts = self.replay[number - 1]
            if abs(logged - value) > 1e-9:
                raise TinysegError(
                    f"{self.job.tune_dir}: step {number} of the log tried {logged:g}, the "
                    f"search now asks for {value:g} (pass --force to start over)"
                )
            return counts
        return self.run_step(number, value)

    def step_options(self, number: int, value: float) -> Any:
        job = self.job
        base = job.plan.options
        options = replace(
            base,
            run_dir=str(step_dir(job.tune_dir, number) / RUN),
            loss_params={**base.loss_params, **job.param.loss_params(value)},
        )
        if job.warm_epochs is not None and number > 1:
            previous = step_dir(job.tune_dir, number - 1) / RUN / "best.pt"
            options = replace(
                options, epochs=job.warm_epochs, iterations=None, init_weights=str(previous)
            )
        return options

    def run_step(self, number: int, value: float) -> Counts:
        job = self.job
        started = time.perf_counter()
        plan = replace(job.plan, options=self.step_options(number, value))
        trainer = Trainer(plan, job.device, job.dist)
        last = trainer.run_dir / "last.pt"
        if last.is_file():  # an interrupted step continues where it stopped
            trainer.restore(load_checkpoint(last))
        else:
            if job.dist.is_main:
                trainer.run_dir.mkdir(parents=True, exist_ok=True)
            trainer.initialise_weights()
        self.train(trainer, number)
        checkpoint = trainer.run_dir / "best.pt"
        totals = job.dist.broadcast(evaluate(job, checkpoint, number) if job.dist.is_main else None)
        job.dist.barrier()
        tp, fp, fn = totals  # type: ignore[misc]
        details = {
            "checkpoint": str(checkpoint.relative_to(job.tune_dir)),
            "seconds": round(time.perf_counter() - started, 3),
        }
        return Counts(tp, fp, fn, details)


def evaluate(job: TuneJob, checkpoint: Path, number: int) -> tuple[np.ndarray, ...]:
    """Predict the val rows with ``checkpoint`` and score them as ``infer`` and ``score`` do;
    the per-class TP, FP, FN totals."""
    plan = job.plan
    here = step_dir(job.tune_dir, number)
    ensemble = infer.load_ensemble([checkpoint], job.device, None)
    refs = [MapRef(s.sample_id, s.image, s.roi) for s in job.val]
    tiles = TileOptions(max_pixels=plan.options.max_pixels)
    run = infer.prepare(ensemble, refs, here / PRED, infer.InferOptions(tiles, force=True))
    result = infer.run(run)
    infer.write_predictions(run, result, [checkpoint, plan.options.manifest], job.argv)
    truth = {s.sample_id: MapRef(s.sample_id, s.mask, s.roi) for s in job.val}
    pred = {t.sample_id: MapRef(t.sample_id, t.labels) for t in run.targets}
    options = CountOptions(
        n_classes=len(plan.source_classes),
        ignore_index=plan.options.ignore_index,
        palette=plan.labelling.palette,
    )
    matrices = count_pairs(pair_maps(truth, pred, "error").pairs, options, jobs=job.jobs)
    index = plan.labelling.binary_index
    if index is not None:
        matrices = [(sid, one_vs_rest_matrix(matrix, index)) for sid, matrix in matrices]
    counts = counts_from_matrices(matrices, len(plan.class_map))
    scored = score_counts({None: counts}, list(plan.class_map.names))
    metadata = {
        "provenance": provenance([checkpoint, here / PRED], job.argv),
        "classes": plan.class_map.to_metadata(),
        "empty": "null",
        "ignore_index": plan.options.ignore_index,
    }
    write_table(result_table(scored), here / SCORES, metadata)
    write_table(result_counts_table(scored), here / COUNTS, metadata)
    totals = counts.totals()
    return totals["tp"], totals["fp"], totals["fn"]
