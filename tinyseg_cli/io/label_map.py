"""The LAS label map (``voxelize --label-map``, recorded in voxel tables and predictions):
source codes (``classification`` values) to class indices, and the labels of a chunk of
points through it (SPEC §4.4)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tinyseg_cli.errors import TinysegError, UsageError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.paths import not_a_file

IGNORE = -100  # the 3D ignore label (SPEC §2, §3)
INT16 = (-(1 << 15), (1 << 15) - 1)


@dataclass(frozen=True)
class LabelMap:
    """Source codes (``classification`` values) -> class indices; unlisted codes -> -100."""

    codes: np.ndarray  # (m,) int64, sorted
    indices: np.ndarray  # (m,) int16
    names: ClassMap | None = None  # when the map gave class names instead of indices

    def to_metadata(self) -> dict[str, int]:
        pairs = zip(self.codes.tolist(), self.indices.tolist(), strict=True)
        return {str(code): int(index) for code, index in pairs}


def parse_label_map(spec: str, class_map: ClassMap | None) -> LabelMap:
    """``--label-map``: ``CODE:INDEX,…``, ``CODE:NAME,…`` or a JSON object of either form.

    Names take their index from ``class_map`` when given, else from their order of first
    appearance (and then form the class map).
    """
    if spec.lower().endswith(".json") or Path(spec).is_file():
        path = Path(spec)
        if not path.is_file():
            raise not_a_file(path)
        try:
            value = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as error:
            raise TinysegError(f"{path}: invalid JSON ({error})") from None
        if not isinstance(value, dict) or not value:
            raise TinysegError(f"{path}: expected a JSON object of code -> class")
        pairs = [(str(k), v) for k, v in value.items()]
        source = str(path)
    else:
        pairs = []
        for item in spec.split(","):
            code, sep, target = item.partition(":")
            if not sep or not code.strip() or not target.strip():
                raise UsageError(f"--label-map: {item!r} is not CODE:CLASS (e.g. 2:ground)")
            pairs.append((code.strip(), target.strip()))
        source = "--label-map"
    try:
        return _build(pairs, class_map, source)
    except UsageError:
        raise
    except TinysegError as error:  # a bad value given on the command line: a usage error
        if source == "--label-map":
            raise UsageError(str(error)) from None
        raise


def label_map_from_metadata(value: dict[str, object], class_map: ClassMap | None) -> LabelMap:
    """The label map a voxel table records (:meth:`LabelMap.to_metadata`), e.g. as it
    travels on to ``infer``'s predictions."""
    return _build([(str(code), index) for code, index in value.items()], class_map, "label_map")


def _build(pairs: list[tuple[str, object]], class_map: ClassMap | None, source: str) -> LabelMap:
    codes: list[int] = []
    targets: list[object] = []
    for code, target in pairs:
        try:
            codes.append(int(code))
        except ValueError:
            raise TinysegError(f"{source}: code {code!r} is not an integer") from None
        if codes[-1] < 0:
            raise TinysegError(f"{source}: code {codes[-1]} is negative (LAS codes are 0..255)")
        targets.append(_as_index(target))
    if len(set(codes)) != len(codes):
        raise TinysegError(f"{source}: a code is listed twice")
    names = None
    if all(isinstance(t, str) for t in targets):
        if class_map is None:
            names = ClassMap(tuple(dict.fromkeys(targets)))  # type: ignore[arg-type]
        lookup = class_map or names
        indices = [lookup.index(t) for t in targets]  # type: ignore[union-attr, arg-type]
    elif all(isinstance(t, int) for t in targets):
        indices = targets  # type: ignore[assignment]
    else:
        raise TinysegError(f"{source}: map every code to an index or every code to a name")
    for code, index in zip(codes, indices, strict=True):
        if index != IGNORE and not 0 <= index <= INT16[1]:
            raise TinysegError(f"{source}: code {code}: class {index} is not 0..32767 or -100")
        if class_map is not None and index != IGNORE and index >= len(class_map):
            raise TinysegError(f"{source}: code {code}: class {index} beyond the class map")
    order = np.argsort(codes)
    return LabelMap(np.asarray(codes, np.int64)[order], np.asarray(indices, np.int16)[order], names)


def _as_index(target: object) -> object:
    """A class index from ``"3"``/``3``/``"-100"``, else the name as given."""
    if isinstance(target, bool):
        raise TinysegError(f"--label-map: {target!r} is neither a class index nor a name")
    if isinstance(target, int):
        return target
    text = str(target).strip()
    try:
        return int(text)
    except ValueError:
        return text


def point_labels(
    codes: np.ndarray,
    label_map: LabelMap | None,
    n_classes: int | None,
    first: int,
    source: str,
) -> tuple[np.ndarray, np.ndarray | None]:
    """int16 labels of a chunk (point ``first`` onwards) and, with a map, the hits per code.

    Without a map the codes are the labels: int16, and below ``n_classes`` (or -100) when a
    class map is known.
    """
    if codes.dtype.kind == "f":
        bad = ~np.isfinite(codes) | (codes != np.round(codes))
        if bad.any():
            at = int(np.argmax(bad))
            raise TinysegError(
                f"{source}: point {first + at}: label {codes[at]!r} is not an integer"
            )
    if codes.dtype.kind not in "iub" and codes.dtype.kind != "f":
        raise TinysegError(f"{source}: label dimension of type {codes.dtype} is not numeric")
    if label_map is None:
        values = codes.astype(np.int64, copy=False)
        bad = (values < INT16[0]) | (values > INT16[1])
        if bad.any():
            at = int(np.argmax(bad))
            raise TinysegError(
                f"{source}: point {first + at}: label {values[at]} outside int16 "
                "(map codes with --label-map)"
            )
        if n_classes is not None:
            bad = (values != IGNORE) & ((values < 0) | (values >= n_classes))
            if bad.any():
                at = int(np.argmax(bad))
                raise TinysegError(
                    f"{source}: point {first + at}: label {values[at]} beyond the class map "
                    f"({n_classes} classes; map codes with --label-map)"
                )
        return values.astype(np.int16), None
    values = codes.astype(np.int64, copy=False)
    where = np.searchsorted(label_map.codes, values).clip(max=len(label_map.codes) - 1)
    hit = label_map.codes[where] == values
    labels = np.where(hit, label_map.indices[where], np.int16(IGNORE)).astype(np.int16)
    return labels, np.bincount(where[hit], minlength=len(label_map.codes))
