"""``split``'s options as a request: which options go together (usage errors, exit 2,
before any file is read) and the values that need parsing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NoReturn

import typer

from tinyseg_cli.cli.options import parsed
from tinyseg_cli.commands.split.folders import FolderLayout, parse_class_pattern
from tinyseg_cli.commands.split.run import SplitRequest


def reject_with_check(given: dict[str, Any]) -> None:
    """--check reads a table and checks it: options that make or write a split are errors."""
    making = [
        "from_dir", "masks", "ratios", "folds", "val_fraction", "fold", "region",
        "test_ids", "from_nnunet", "export_nnunet", "output", "class_from_folder",
        "mask_threshold",
    ]  # fmt: skip
    used = [name for name in making if given[name] is not None]
    used += [name for name in ("stratify", "no_counts", "background_folder") if given[name]]
    used += ["mask_suffix"] if given["mask_suffix"] else []
    if used:
        flag = "--" + used[0].replace("_", "-")
        raise typer.BadParameter(f"{flag} cannot be used with --check", param_hint="--check")
    if given["manifest"] is None:
        raise typer.BadParameter("--check needs the TABLE to check", param_hint="--check")
    if given["group"] is not None and given["no_group"]:
        raise typer.BadParameter("--no-group cannot be used with --group", param_hint="--no-group")


def split_mode(
    ratios: str | None,
    folds: int | None,
    region: str | None,
    from_nnunet: str | None,
    manifest: str | None,
) -> str:
    """ratios, folds, region, nnunet, or keep (a table's own split, for --fold/--export)."""
    given = {
        "ratios": ratios is not None,
        "folds": folds is not None,
        "region": region is not None,
        "nnunet": from_nnunet is not None,
    }
    chosen = [mode for mode, on in given.items() if on]
    if len(chosen) > 1:
        flags = {"ratios": "--ratios", "folds": "--folds", "region": "--region"}
        named = [flags.get(mode, "--from-nnunet") for mode in chosen]
        raise typer.BadParameter(f"choose one of {' and '.join(named)}")
    if chosen:
        return chosen[0]
    if manifest is None:
        raise typer.BadParameter(
            "choose a mode: --ratios, --folds, --region or --from-nnunet (or --check TABLE)"
        )
    return "keep"


def check_usage(request: SplitRequest, no_counts: bool) -> None:
    """Options that do not go together: usage errors before any file is read."""
    mode, plan = request.mode, request.plan
    sources = [request.manifest is not None, request.from_dir is not None]
    folders = request.folders is not None
    if request.masks is not None and request.from_dir is None:
        _usage("--masks goes with --from-dir IMAGES", "--masks")
    if request.from_dir is not None and request.masks is None and not folders:
        _usage(
            "--from-dir IMAGES needs --masks MASKS (or --class-from-folder, with each mask "
            "beside its image)",
            "--from-dir",
        )
    if all(sources) or not any(sources):
        _usage("give a MANIFEST or --from-dir IMAGES --masks MASKS (one of them)")
    if folders and request.from_dir is None:
        _usage("goes with --from-dir IMAGES", "--class-from-folder")
    if request.mask_suffix and request.from_dir is None:
        _usage("goes with --from-dir IMAGES", "--mask-suffix")
    if plan.ratios and len(plan.ratios) == 3 and request.test_ids is not None:
        _usage("with --test-ids the test split is the named groups: give TRAIN,VAL", "--ratios")
    if plan.val_fraction is not None and not 0 < plan.val_fraction < 1:
        _usage(f"{plan.val_fraction:g} is not between 0 and 1", "--val-fraction")
    if plan.val_fraction is not None and mode != "folds":
        _usage("needs --folds", "--val-fraction")
    if request.fold is not None and mode not in ("folds", "keep", "nnunet"):
        _usage("needs --folds (or a MANIFEST with a fold column)", "--fold")
    if request.fold is not None and plan.folds is not None and request.fold >= plan.folds:
        _usage(f"{request.fold} is not one of the folds 0..{plan.folds - 1}", "--fold")
    if request.test_ids is not None and mode in ("nnunet", "keep"):
        _usage("needs --ratios, --folds or --region", "--test-ids")
    if plan.stratify and mode not in ("ratios", "folds"):
        _usage("needs --ratios or --folds", "--stratify")
    if plan.stratify and no_counts:
        _usage("needs the class counts of the masks: drop --no-counts", "--stratify")


def _usage(message: str, option: str | None = None) -> NoReturn:
    raise typer.BadParameter(message, param_hint=option)


def folder_layout(
    from_dir: str | None,
    masks: str | None,
    class_from_folder: str | None,
    background: list[str] | None,
    mask_suffix: str,
) -> FolderLayout | None:
    """The folder-per-class layout of ``--class-from-folder``/``--background-folder``, or
    None for a plain --from-dir (or a MANIFEST)."""
    if class_from_folder is None and not background:
        return None
    if from_dir is None:
        _usage(
            "goes with --from-dir IMAGES",
            "--class-from-folder" if class_from_folder else "--background-folder",
        )
    for name in background or []:
        if not name or "/" in name:
            _usage(f"{name!r} is not a folder name", "--background-folder")
    pattern = parsed(class_from_folder or None, parse_class_pattern, "--class-from-folder")
    return FolderLayout(
        Path(from_dir),  # type: ignore[arg-type]
        Path(masks) if masks else None,
        pattern,
        tuple(background or ()),
        mask_suffix,
    )
