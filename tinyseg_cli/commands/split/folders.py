"""A manifest from a defect set laid out one folder per class (SPEC §4.1, ``split --from-dir
--class-from-folder``): magnetic-tile's ``MT_<Defect>/Imgs/<stem>.jpg`` beside ``<stem>.png``,
MVTec AD's ``test/<defect>/NNN.png`` with ``ground_truth/<defect>/NNN_mask.png``.

Each image's class is captured from its folder (relative to IMAGES) by a regular expression;
its mask lies beside it or at the same place in a parallel tree (``--masks``), named by its
stem and ``--mask-suffix``. A folder named by ``--background-folder`` holds defect-free
images: no mask, every pixel background. Masks are recorded, never rewritten: the class of
each row's foreground goes to the ``mask_class`` column (:mod:`tinyseg_cli.io.masks`).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.classmap import ClassMap
from tinyseg_cli.io.formats import IMAGE_SUFFIXES, RASTER_SUFFIXES
from tinyseg_cli.io.paths import check_storable, visible

BACKGROUND = "background"


@dataclass(frozen=True)
class FolderLayout:
    """Where the images, masks and classes of a folder-per-class set are."""

    images: Path
    masks: Path | None = None  # a parallel tree; None: each mask beside its image
    class_pattern: re.Pattern[str] | None = None  # captures the class from the folder
    background: tuple[str, ...] = ()  # folders of defect-free images (no masks)
    mask_suffix: str = ""  # a mask is <stem><suffix>.png|.tif|.tiff|.npy


@dataclass(frozen=True)
class FolderRow:
    """One image of the set: its sample id, files and the class of its mask."""

    sample_id: str
    image: Path
    mask: Path | None  # None: a background image without a mask
    class_name: str
    folder: str  # relative to IMAGES, for messages


@dataclass(frozen=True)
class FolderSet:
    rows: list[FolderRow]
    class_map: ClassMap
    without_mask: list[str]  # images of class folders that have no mask, left out


def parse_class_pattern(text: str) -> re.Pattern[str]:
    """``--class-from-folder REGEX``, compiled; it must capture the class (group 1, or
    ``(?P<class>…)``). ValueError names what is wrong."""
    try:
        pattern = re.compile(text)
    except re.error as error:
        raise ValueError(f"{text!r} is not a regular expression ({error})") from None
    if pattern.groups < 1:
        raise ValueError(
            f"{text!r} captures nothing: capture the class name with a group, e.g. "
            "'MT_([^/]+)' or '(?P<class>[^/]+)$'"
        )
    return pattern


def _files(root: Path) -> list[Path]:
    """Every visible file below ``root``, in a stable order (hidden folders skipped)."""
    found = []
    for folder, subfolders, names in os.walk(root):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        found += [Path(folder, name) for name in sorted(names) if visible(Path(folder, name))]
    return found


def _is_mask_name(path: Path, suffix: str) -> bool:
    return path.suffix.lower() in RASTER_SUFFIXES and (bool(suffix) and path.stem.endswith(suffix))


def _images_and_masks(layout: FolderLayout) -> tuple[list[Path], dict[Path, Path]]:
    """The images below IMAGES and the masks by (folder relative to their root, stem)."""
    beside = layout.masks is None
    files = _files(layout.images)
    masks_root = layout.images if beside else layout.masks
    assert masks_root is not None
    mask_files = files if beside else _files(masks_root)
    suffix = layout.mask_suffix
    masks: dict[Path, Path] = {}
    for path in mask_files:
        if path.suffix.lower() not in RASTER_SUFFIXES:
            continue
        if suffix and not path.stem.endswith(suffix):
            continue
        key = path.relative_to(masks_root).parent / path.stem[: len(path.stem) - len(suffix)]
        if beside and not suffix and not _has_jpeg_twin(path):
            continue  # beside without a suffix: only a PNG/TIFF next to a JPEG is a mask
        if key in masks:
            raise TinysegError(
                f"{path}: two masks for image {key}: {masks[key].name} and {path.name}"
            )
        masks[key] = path
    mask_paths = set(masks.values())
    images = [
        path
        for path in files
        if path.suffix.lower() in IMAGE_SUFFIXES
        and path not in mask_paths
        and not (beside and _is_mask_name(path, suffix))
    ]
    return images, masks


def _has_jpeg_twin(path: Path) -> bool:
    return any(path.with_suffix(jpeg).is_file() for jpeg in (".jpg", ".jpeg", ".JPG", ".JPEG"))


def _class_of(folder: str, layout: FolderLayout, image: Path) -> str | None:
    """The class captured from ``folder``; None for a background folder."""
    parts = PurePosixPath(folder).parts
    if any(part in layout.background for part in parts):
        return None
    match = layout.class_pattern.search(folder) if layout.class_pattern else None
    if match is None:
        rule = (
            f"--class-from-folder {layout.class_pattern.pattern!r}"
            if layout.class_pattern
            else "no --class-from-folder"
        )
        raise TinysegError(
            f"{image}: its folder {folder!r} matches {rule} and is no --background-folder "
            f"({', '.join(layout.background) or 'none given'})"
        )
    groups = match.groupdict()
    name = groups.get("class") if "class" in groups else match.group(1)
    if not name:
        raise TinysegError(
            f"{image}: --class-from-folder {layout.class_pattern.pattern!r} captures an empty "  # type: ignore[union-attr]
            f"class name from folder {folder!r}"
        )
    return name


def _sample_ids(images: list[Path], root: Path) -> list[str]:
    """Stems when they are unique; else every image's path below IMAGES, without its
    suffix, with '-' for '/' (MVTec's 000.png repeats in every defect folder)."""
    stems = [path.stem for path in images]
    if len(set(stems)) == len(stems):
        return stems
    ids = ["-".join(path.relative_to(root).with_suffix("").parts) for path in images]
    if len(set(ids)) != len(ids):
        twice = next(i for i in ids if ids.count(i) > 1)
        raise TinysegError(f"{root}: two images make the sample id {twice!r}")
    return ids


def class_map_of(found: list[str], given: ClassMap | None) -> ClassMap:
    """``--classes`` (checked: it names every class found, background first), else
    background followed by the classes found in name order."""
    if given is None:
        names = sorted(set(found))
        if BACKGROUND in names:
            raise TinysegError(
                f"a class folder is named {BACKGROUND!r}; name the classes with --classes"
            )
        return ClassMap((BACKGROUND, *names))
    missing = sorted(set(found) - set(given.names[1:]))
    if missing:
        raise TinysegError(
            f"--classes {','.join(given.names)}: no class for folder class(es) "
            f"{', '.join(map(repr, missing))} (index 0 is the background)"
        )
    return given


def discover(layout: FolderLayout, classes: ClassMap | None) -> FolderSet:
    """Every image of the set with its mask and class (see the module docstring)."""
    for root, option in ((layout.images, "--from-dir"), (layout.masks, "--masks")):
        if root is not None and not root.is_dir():
            raise TinysegError(f"{root}: {option} with --class-from-folder needs a folder")
    images, masks = _images_and_masks(layout)
    rows: list[FolderRow] = []
    without_mask: list[str] = []
    kept: list[tuple[Path, Path | None, str, str]] = []
    for image in images:
        relative = image.relative_to(layout.images)
        folder = relative.parent.as_posix()
        check_storable(str(image), str(image.parent), "paths")
        name = _class_of(folder, layout, image)
        mask = masks.get(relative.parent / image.stem)
        if name is not None and mask is None:
            without_mask.append(relative.as_posix())
            continue
        kept.append((image, mask if name is not None else None, name or "", folder))
    if not kept:
        raise TinysegError(f"{layout.images}: no image with a mask or in a background folder")
    ids = _sample_ids([image for image, *_ in kept], layout.images)
    for sample_id, (image, mask, name, folder) in zip(ids, kept, strict=True):
        check_storable(sample_id, str(image))
        rows.append(FolderRow(sample_id, image, mask, name, folder))
    class_map = class_map_of([row.class_name for row in rows if row.class_name], classes)
    rows = [
        FolderRow(r.sample_id, r.image, r.mask, r.class_name or class_map.names[0], r.folder)
        for r in rows
    ]
    return FolderSet(rows, class_map, without_mask)
