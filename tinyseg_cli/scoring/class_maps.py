"""Which classes a truth and a prediction are scored in (``score``, ``overlay``).

A prediction's class map travels with it (``predictions.parquet`` of ``tinyseg infer``); a
truth's with its manifest or ``--classes``. When both are known they must be the same, or
scores would compare unrelated labels: a ``--binary fray`` model's ``[rest, fray]`` scored
against a six-class truth would count every fray pixel as the truth's class 1. A user who
means such a comparison names the prediction's classes with ``--pred-classes``; the truth
is then scored in the prediction's classes, matched by name, and the one prediction class
the truth does not name (``rest``) takes every truth class the prediction does not name.
"""

from __future__ import annotations

import numpy as np

from tinyseg_cli.errors import UsageError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.scoring.pairs import classes_of_inputs


def _names(class_map: ClassMap) -> str:
    return ", ".join(class_map.names)


def correspondence(truth: ClassMap, pred: ClassMap) -> np.ndarray | None:
    """Truth class index → prediction class index (None when the maps are the same)."""
    if truth.names == pred.names:
        return None
    index = {name: i for i, name in enumerate(pred.names)}
    spare = [i for i, name in enumerate(pred.names) if name not in truth.names]
    unmatched = [name for name in truth.names if name not in index]
    if unmatched and len(spare) != 1:
        reason = (
            "no prediction class is left to take them"
            if not spare
            else f"several prediction classes could ({', '.join(pred.names[i] for i in spare)})"
        )
        raise UsageError(
            f"--pred-classes ({_names(pred)}): the truth's classes "
            f"{', '.join(map(repr, unmatched))} have no counterpart and {reason}; name each "
            "truth class, or one class such as 'rest' for all the others"
        )
    dtype = np.uint8 if len(pred) <= 256 else np.uint16
    return np.array([index.get(name, spare[0] if spare else 0) for name in truth.names], dtype)


def scored_classes(
    truth: ClassMap | None,
    pred: ClassMap | None,
    pred_classes: ClassMap | None,
    names: tuple[str, str],
) -> tuple[ClassMap | None, np.ndarray | None]:
    """The class map scores are reported in and the truth's remap into it (None: none).

    ``truth``/``pred``: the class maps found (or given) for each side; ``pred_classes``: the
    prediction's classes as ``--pred-classes`` names them; ``names``: the two inputs, for
    messages. Different maps without ``--pred-classes`` are a usage error (exit 2).
    """
    if pred_classes is None:
        if truth is not None and pred is not None and truth.names != pred.names:
            raise UsageError(
                f"--truth {names[0]} holds classes ({_names(truth)}) but --pred {names[1]} "
                f"predicts ({_names(pred)}): name the prediction's classes with --pred-classes "
                "to score the truth in them (e.g. --pred-classes rest,fray for a one-vs-rest "
                "fray model: every other truth class counts as rest)"
            )
        return truth or pred, None
    if truth is None:
        raise UsageError(
            "--pred-classes needs the truth's classes: --classes, or a manifest that carries them"
        )
    return pred_classes, correspondence(truth, pred_classes)


def predictions_class_map(specs: list[str]) -> ClassMap | None:
    """The class map the predictions carry (one for all runs: their scores are averaged)."""
    found = {spec: classes_of_inputs([spec]) for spec in specs}
    known = {spec: m for spec, m in found.items() if m is not None}
    maps = {m.names for m in known.values()}
    if len(maps) > 1:
        shown = "; ".join(f"{spec}: {_names(m)}" for spec, m in known.items())
        raise UsageError(f"the runs predict different classes ({shown}); score them apart")
    return next(iter(known.values()), None)
