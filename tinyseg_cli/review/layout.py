"""Where ``tinyseg overlay`` puts its files inside OUT_DIR, as relative POSIX names: the
writers join them to OUT_DIR and the gallery links them as they are."""

from __future__ import annotations

INDEX = "index.html"
THUMBS = "thumbs"
CROPS = "crops"
PANELS = "panels"
FOLDERS = (THUMBS, CROPS, PANELS)


def overlay_name(sample_id: str) -> str:
    """The full overlay of a sample."""
    return f"{sample_id}.png"


def thumb_name(sample_id: str) -> str:
    """The gallery's thumbnail of a sample."""
    return f"{THUMBS}/{sample_id}.png"


def crop_name(sample_id: str, number: int) -> str:
    """The ``number``-th worst object of a sample (1-based)."""
    return f"{CROPS}/{sample_id}_{number}.png"


def panel_name(sample_id: str) -> str:
    """The image | truth | prediction panel of a sample."""
    return f"{PANELS}/{sample_id}.png"


def sample_files(sample_id: str, crops: int, panel: bool) -> list[str]:
    """Every file a sample may get: its overlay, thumbnail, panel and up to ``crops`` crops."""
    names = [overlay_name(sample_id), thumb_name(sample_id)]
    if panel:
        names.append(panel_name(sample_id))
    return names + [crop_name(sample_id, number) for number in range(1, crops + 1)]
