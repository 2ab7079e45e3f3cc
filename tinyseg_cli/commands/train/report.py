"""What ``tinyseg train`` reports: the ``--json`` summaries of a run and of ``--dry-run``,
and their tables on stderr (2D, and the 3D variant for voxel tables)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.table import Table

from tinyseg_cli.cli import console

if TYPE_CHECKING:
    from tinyseg_cli.commands.train.loop import Trainer


def run_summary(trainer: Trainer) -> dict[str, Any]:
    """What a finished run did (the ``--json`` summary)."""
    p = trainer.position
    return {
        "run_dir": str(trainer.run_dir),
        "steps": p.step,
        "epochs": p.epoch + (p.batch > 0),  # an epoch that --iterations ended inside counts
        "select": trainer.plan.options.select,
        "best": p.best,
        "best_step": p.best_step,
        "checkpoints": {
            "last": str(trainer.run_dir / "last.pt"),
            "best": str(trainer.run_dir / "best.pt"),
        },
        "log": str(trainer.run_dir / "log.parquet"),
    }


def print_done(summary: dict[str, Any]) -> None:
    best = summary["best"]
    best_text = "—" if best is None else f"{best:.4f} at step {summary['best_step']}"
    console.stderr.print(
        f"trained {summary['steps']} steps ({summary['epochs']} epochs); best val "
        f"{summary['select']}: {best_text}; run in {console.safe(summary['run_dir'])}"
    )


def dry_run_summary(trainer: Trainer) -> dict[str, Any]:
    """The model's size and cost and the data an epoch draws (the ``--dry-run`` summary)."""
    summary = trainer.modality.describe(trainer.model, trainer.spec)
    summary["total_steps"] = trainer.total
    return summary


def print_dry_run(summary: dict[str, Any]) -> None:
    if "input_size" not in summary:
        _print_voxel_dry_run(summary)
        return
    s = summary
    height, width = s["input_size"]
    from tinyseg_cli.models import SEED_NETWORKS

    # the seed studies' networks have no smp encoder: the spec's default would mislead
    name = s["arch"] if s["arch"] in SEED_NETWORKS else f"{s['arch']} / {s['encoder']}"
    table = Table(title=f"dry run: {name}", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    for label, value in (
        ("parameters", f"{s['parameters']:,}"),
        ("trainable", f"{s['trainable']:,}"),
        (f"FLOPs per {height}×{width} image", f"{s['flops']:,}"),
        ("train samples", str(s["train_samples"])),
        ("val samples", str(s["val_samples"])),
        ("patches in epoch 0", str(s["patches_epoch_0"])),
        ("steps in epoch 0", str(s["steps_epoch_0"])),
        ("total steps", str(s["total_steps"])),
        ("loss", f"{s['loss']} {s['loss_params'] or ''}".strip()),
        ("normalisation mean", ", ".join(f"{v:.4f}" for v in s["mean"])),
        ("normalisation std", ", ".join(f"{v:.4f}" for v in s["std"])),
    ):
        table.add_row(label, value)
    console.stderr.print(table)
    classes = Table(title="training pixels per class", title_justify="left")
    for header in ("index", "class", "pixels", "share", "weight"):
        classes.add_column(header, justify="left" if header == "class" else "right")
    total = max(sum(c["pixels"] for c in s["classes"]), 1)
    for c in s["classes"]:
        weight = "—" if c["weight"] is None else f"{c['weight']:.4f}"
        share = f"{100 * c['pixels'] / total:.3f} %"
        classes.add_row(str(c["index"]), console.safe(c["name"]), f"{c['pixels']:,}", share, weight)
    console.stderr.print(classes)


def _print_voxel_dry_run(summary: dict[str, Any]) -> None:
    s = summary
    table = Table(title=f"dry run: {s['arch']} ({s['sparse_backend']})", title_justify="left")
    table.add_column("what")
    table.add_column("value", justify="right")
    sizes = s["voxels_per_tile"]
    for label, value in (
        ("parameters", f"{s['parameters']:,}"),
        ("channels", ", ".join(map(str, s["channels"]))),
        ("ASPP dilations", ", ".join(map(str, s["aspp_dilations"] or [])) or "no ASPP"),
        ("features", console.safe(", ".join(s["features"]))),
        ("train tiles", str(s["train_tiles"])),
        ("val tiles", str(s["val_tiles"])),
        ("voxels per tile", f"{sizes['min']:,} … {sizes['max']:,} (mean {sizes['mean']:,.0f})"),
        ("steps in epoch 0", str(s["steps_epoch_0"])),
        ("total steps", str(s["total_steps"])),
        ("loss", f"{s['loss']} {s['loss_params'] or ''}".strip()),
    ):
        table.add_row(label, value)
    console.stderr.print(table)
    classes = Table(title="training voxels per class", title_justify="left")
    for header in ("index", "class", "voxels", "weight"):
        classes.add_column(header, justify="left" if header == "class" else "right")
    for c in s["classes"]:
        weight = "—" if c["weight"] is None else f"{c['weight']:.4f}"
        classes.add_row(str(c["index"]), console.safe(c["name"]), f"{c['voxels']:,}", weight)
    console.stderr.print(classes)
