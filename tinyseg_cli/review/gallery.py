"""``OUT_DIR/index.html``: a static gallery of the samples, worst first (SPEC §4.9).

One self-contained page: no script, no server, nothing fetched from the network, every link
relative to OUT_DIR (percent-encoded, then HTML-escaped), every name from input escaped. It
opens from a file manager, a network share or an archive of the folder.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from urllib.parse import quote

from tinyseg_cli.review import layout
from tinyseg_cli.review.render import FN_COLOUR, FP_COLOUR, OUTLINE_COLOUR, TP_COLOUR, pool_factor
from tinyseg_cli.review.sample import SampleSummary

STYLE = """\
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
table { border-collapse: collapse; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: right; vertical-align: top; }
th { background: #eee; position: sticky; top: 0; }
td.sample, th.sample { text-align: left; max-width: 28em; overflow-wrap: anywhere; }
td.picture { text-align: center; background: #181818; }
img { image-rendering: pixelated; display: block; }
.key { display: inline-block; width: 0.9em; height: 0.9em; vertical-align: -0.1em;
       border: 1px solid #444; margin: 0 0.3em 0 1em; }
.links a { margin-right: 0.6em; }
"""


def href(name: str) -> str:
    """A relative file name as an attribute value: percent-encoded (``#``, ``?``, ``%`` and
    spaces in sample ids stay part of the name), then HTML-escaped."""
    return html.escape(quote(name, safe="/"), quote=True)


def sort_key(summary: SampleSummary) -> tuple[bool, float, bool, float, str]:
    """Object recall ascending, then pixel F2 ascending, then the sample id; a sample
    without true objects (recall undefined) after the others, and an undefined F2 (no
    foreground anywhere) last within its recall."""
    recall, f2 = summary.object_recall, summary.pixel_f2
    return (
        math.isnan(recall),
        0.0 if math.isnan(recall) else recall,
        math.isnan(f2),
        0.0 if math.isnan(f2) else f2,
        summary.sample_id,
    )


def ordered(summaries: Sequence[SampleSummary]) -> list[SampleSummary]:
    """The samples in gallery order, worst first (:func:`sort_key`)."""
    return sorted(summaries, key=sort_key)


def _number(value: float) -> str:
    return "–" if math.isnan(value) else f"{value:.3f}"


def thumb_size(summary: SampleSummary, max_size: int) -> tuple[int, int]:
    """Height and width of a sample's thumbnail, as the writer makes it."""
    height, width = (math.ceil(side / summary.factor) for side in summary.shape)
    factor = pool_factor(height, width, max_size)
    return math.ceil(height / factor), math.ceil(width / factor)


def _key(colour: tuple[int, int, int], label: str) -> str:
    red, green, blue = colour
    return f'<span class="key" style="background: rgb({red},{green},{blue})"></span>{label}'


def _row(rank: int, summary: SampleSummary, thumb: int) -> str:
    name = summary.sample_id
    height, width = thumb_size(summary, thumb)
    links = [f'<a href="{href(layout.overlay_name(name))}">overlay</a>']
    if summary.panel:
        links.append(f'<a href="{href(layout.panel_name(name))}">panel</a>')
    links += [
        f'<a href="{href(crop.name)}" title="{html.escape(crop.caption)}">crop {number}</a>'
        for number, crop in enumerate(summary.crops, 1)
    ]
    cells = [
        str(rank),
        f'<a href="{href(layout.overlay_name(name))}"><img src="{href(layout.thumb_name(name))}"'
        f' alt="{html.escape(name)}" width="{width}" height="{height}" loading="lazy"></a>',
        f'{html.escape(name)}<div class="links">{" ".join(links)}</div>',
        f"{summary.true_objects:,}",
        f"{summary.missed:,}",
        f"{summary.false:,}",
        _number(summary.object_recall),
        f"{summary.tp:,}",
        f"{summary.fp:,}",
        f"{summary.fn:,}",
        _number(summary.pixel_f2),
    ]
    classes = ["", ' class="picture"', ' class="sample"'] + [""] * 8
    return "<tr>" + "".join(f"<td{c}>{v}</td>" for c, v in zip(classes, cells, strict=True))


def gallery_html(
    summaries: Sequence[SampleSummary], notes: Sequence[str], thumb: int, outlines: bool
) -> str:
    """The page: a colour key, ``notes`` (how objects were matched …, escaped here) and one
    row per sample in gallery order."""
    key = [_key(TP_COLOUR, "TP"), _key(FP_COLOUR, "FP (false alarm)"), _key(FN_COLOUR, "FN")]
    if outlines:
        key.append(_key(OUTLINE_COLOUR, "truth outline"))
    headers = [
        "#", "picture", "sample", "true objects", "missed", "false", "object recall",
        "TP px", "FP px", "FN px", "pixel F2",
    ]  # fmt: skip
    rows = [_row(rank, s, thumb) for rank, s in enumerate(ordered(summaries), 1)]
    head = "".join(
        f"<th{' class=sample' if h == 'sample' else ''}>{html.escape(h)}</th>" for h in headers
    )
    items = "".join(f"<li>{html.escape(note)}</li>" for note in notes)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            '<meta name="viewport" content="width=device-width, initial-scale=1">',
            f"<title>tinyseg overlay: {len(summaries)} samples</title>",
            f"<style>\n{STYLE}</style></head><body>",
            f"<h1>tinyseg overlay: {len(summaries)} samples, worst first</h1>",
            f"<p>Pixels:{''.join(key)}</p>",
            f"<ul>{items}</ul>",
            f"<table><thead><tr>{head}</tr></thead><tbody>",
            *rows,
            "</tbody></table></body></html>",
            "",
        ]
    )
