"""``tinyseg plot``: each kind of table detected and drawn (what the figure holds, read back
from SVG ids and text, or from the figure's artists), the formats, and the error paths."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import write_map

from tinyseg_cli.plots import curves, tables
from tinyseg_cli.plots.draw import PlotOptions, build_figure

CLASSES = ["background", "crack", "pore"]
MAGIC = {"png": b"\x89PNG\r\n\x1a\n", "pdf": b"%PDF-", "svg": b"<?xml"}


# -- tables made by tinyseg's own code -------------------------------------------------------


def write_training_log(path: Path, seed: int, steps: int = 6, every: int = 2) -> None:
    """A run's log.parquet, written by train's own TrainLog from counts drawn at random."""
    from tinyseg_cli.commands.train.common import Validation
    from tinyseg_cli.commands.train.log import TrainLog
    from tinyseg_cli.metrics.summary import summarize

    rng = np.random.default_rng(seed)
    log = TrainLog(CLASSES)
    for step in range(1, steps + 1):
        log.add_step(step, step // every, loss=1.0 / step + seed, lr=1e-3 / step, speed=8.0)
        if step % every == 0:
            counts = {name: rng.integers(1, 100, len(CLASSES)) for name in ("tp", "fp", "fn", "tn")}
            summary = summarize(counts, averaged=[1, 2], n_samples=2)
            log.add_validation(step, step // every, Validation(summary, "f2", None))
    path.parent.mkdir(parents=True, exist_ok=True)
    log.write(path, {"model": {"arch": "half-unet"}})


def write_tune_log(folder: Path, target: tuple[float, float] = (0.3, 0.4)) -> None:
    """A TUNE_DIR/steps.parquet of the real bisection over a stand-in objective (OII by α:
    0.126 below 0.55, 0.344 below 0.65, else 1): steps α = 0.5, 0.7, 0.6."""
    from tinyseg_cli.commands.tune_oii import log as tune_log
    from tinyseg_cli.commands.tune_oii.search import Bisection, Counts, OiiOf, bisect

    def objective(alpha: float) -> Counts:
        tp, fp, fn = (2, 1, 1) if alpha < 0.55 else (2, 3, 3) if alpha < 0.65 else (2, 0, 1)
        return Counts(np.array([50, tp]), np.array([fn, fp]), np.array([fp, fn]))

    rows: list[dict] = []
    settings = Bisection(low=0.1, high=0.9, target=target, tol=0.01)
    bisect(
        objective,
        settings,
        OiiOf("class", (1,)),
        lambda s: rows.append(tune_log.log_row(s, "alpha", True)),
    )
    search = {"param": "alpha", "range": [0.1, 0.9], "target": list(target), "tol": 0.01}
    folder.mkdir(parents=True, exist_ok=True)
    schema = tune_log.log_schema("alpha", True)
    tune_log.write_log(folder / tune_log.LOG_NAME, rows, schema, {"tune": {"search": search}})


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tinyseg score --run a=… --run b=… --run c=… -o scores.parquet`` on random 3-class
    masks."""
    from conftest import Cli

    root = tmp_path_factory.mktemp("scores")
    rng = np.random.default_rng(3)
    for folder in ("truth", "a", "b", "c"):
        for stem in ("x", "y"):
            write_map(root / folder / f"{stem}.png", rng.integers(0, 3, (16, 16), dtype=np.uint8))
    out = root / "scores.parquet"
    runs = [arg for run in "abc" for arg in ("--run", f"{run}={root / run}")]
    result = Cli()(
        "score", "--truth", root / "truth", *runs, "--classes", ",".join(CLASSES), "-o", out
    )
    assert result.exit_code == 0, result.output
    return out


def svg_ids(path: Path) -> list[str]:
    return [el.get("id", "") for el in ET.parse(path).iter() if el.get("id")]


def svg_texts(path: Path) -> list[str]:
    return [
        "".join(el.itertext()).strip() for el in ET.parse(path).iter() if el.tag.endswith("text")
    ]


def one_line_error(result) -> str:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    return lines[0]


# -- kinds -------------------------------------------------------------------------------------


def test_each_kind_is_detected_and_folders_stand_for_their_log(tmp_path, scores):
    write_training_log(tmp_path / "run" / "log.parquet", seed=0)
    write_tune_log(tmp_path / "tune")
    found = {}
    for path in (tmp_path / "run", tmp_path / "tune", scores):
        (source,) = tables.open_sources([str(path)])
        found[path.name] = (tables.detect_kind(source), Path(source.path).name, source.label)
    assert found == {
        "run": ("log", "log.parquet", "run"),
        "tune": ("tune", "steps.parquet", "tune"),
        "scores.parquet": ("runs", "scores.parquet", "scores"),
    }


def test_default_labels_take_parent_folders_only_when_names_clash():
    clash = tables.default_labels(["x/a/run/log.parquet", "x/b/run/log.parquet", "s.parquet"])
    assert clash == ["a/run", "b/run", "s"]
    assert tables.default_labels(["seed1/log.parquet", "-"]) == ["seed1", "stdin"]


def test_unknown_table_is_one_line_error_naming_the_file(cli, tmp_path):
    manifest = tmp_path / "manifest.parquet"
    pq.write_table(pa.table({"sample_id": ["a"], "image": ["a.png"], "mask": ["a.png"]}), manifest)
    out = tmp_path / "fig.png"
    result = cli("plot", manifest, "-o", out)
    assert result.exit_code == 1
    line = one_line_error(result)
    assert str(manifest) in line and "not a training log, scores table or tune-oii log" in line
    assert "sample_id" in line  # what it found instead
    assert not out.exists() and list(tmp_path.glob(".fig.png*")) == []


def test_tables_of_two_kinds_or_a_kind_they_are_not_are_refused(cli, tmp_path, scores):
    write_training_log(tmp_path / "run" / "log.parquet", seed=0)
    mixed = cli("plot", tmp_path / "run", scores, "-o", tmp_path / "f.png")
    assert mixed.exit_code == 1
    assert "is a training log but" in one_line_error(mixed) and str(scores) in mixed.output
    wrong = cli("plot", scores, "--kind", "tune", "-o", tmp_path / "f.png")
    assert wrong.exit_code == 1
    assert "not a tune-oii log (--kind tune): no column step" in one_line_error(wrong)
    assert not (tmp_path / "f.png").exists()


# -- training logs -----------------------------------------------------------------------------


def test_several_logs_are_overlaid_per_panel_and_class(cli, tmp_path):
    for seed, name in enumerate(("seed1", "seed2")):
        write_training_log(tmp_path / name / "log.parquet", seed=seed)
    out = tmp_path / "curves.svg"
    result = cli("plot", tmp_path / "seed1", tmp_path / "seed2", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC["svg"])
    ids = set(svg_ids(out))
    runs, series = ("seed1", "seed2"), ("crack", "pore")  # foreground classes by default
    expected = {f"{panel}/{run}" for panel in ("loss", "lr") for run in runs}
    expected |= {f"{m}/{run} {s}" for m in ("f2", "iou", "oii") for run in runs for s in series}
    assert expected <= ids
    assert not {i for i in ids if "background" in i}
    assert {"seed1 crack", "seed2 pore", "seed1", "F2", "OII", "step"} <= set(svg_texts(out))


def test_log_lines_hold_the_logged_values(tmp_path):
    write_training_log(tmp_path / "run" / "log.parquet", seed=0)
    sources = tables.open_sources([str(tmp_path / "run")])
    options = PlotOptions(metrics=["oii"], classes=["pore", "macro"])
    figure = build_figure("log", sources, options)
    lines = {
        line.get_gid(): line for ax in figure.axes for line in ax.get_lines() if line.get_gid()
    }
    rows = pq.read_table(tmp_path / "run" / "log.parquet").to_pylist()
    steps = [r for r in rows if r["kind"] == "step"]
    pore = [r for r in rows if r["kind"] == "val" and r["class_name"] == "pore"]
    macro = [r for r in rows if r["kind"] == "val" and r["level"] == "macro"]
    assert sorted(lines) == ["loss/run", "lr/run", "oii/macro", "oii/pore"]
    np.testing.assert_allclose(lines["loss/run"].get_ydata(), [r["loss"] for r in steps])
    np.testing.assert_allclose(lines["lr/run"].get_xdata(), [r["step"] for r in steps])
    np.testing.assert_allclose(lines["oii/pore"].get_xdata(), [2, 4, 6])
    np.testing.assert_allclose(lines["oii/pore"].get_ydata(), [r["oii"] for r in pore])
    np.testing.assert_allclose(lines["oii/macro"].get_ydata(), [r["oii"] for r in macro])
    assert len(figure.axes) == 3  # loss, lr, oii


# -- score runs --------------------------------------------------------------------------------


def test_runs_mean_and_std_are_the_ones_score_reports(scores):
    sources = tables.open_sources([str(scores)])
    series = tables.choose_series(sources, None)
    assert series == [["crack", "pore"]]
    runs = curves.read_runs(sources, series, ["f2", "oii"])
    assert runs.runs == ["a", "b", "c"]
    rows = pq.read_table(scores).to_pylist()
    for stat, compute in (("mean", runs.mean), ("std", runs.std)):
        for metric in ("f2", "oii"):
            recorded = {
                r["class_name"]: r[metric]
                for r in rows
                if r["stat"] == stat and r["level"] == "class"
            }
            np.testing.assert_allclose(compute(metric), [recorded["crack"], recorded["pore"]])


def test_runs_figure_has_a_bar_per_class_and_a_dot_per_run(cli, tmp_path, scores):
    out = tmp_path / "runs.svg"
    result = cli(
        "plot",
        scores,
        "--metric",
        "f2",
        "--metric",
        "iou,oii",
        "--classes",
        "crack,macro",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    ids = svg_ids(out)
    for metric in ("f2", "iou", "oii"):
        assert {f"mean/{metric}/crack", f"mean/{metric}/macro", f"std/{metric}"} <= set(ids)
        assert [i for i in ids if i.startswith(f"run/{metric}/")] == [
            f"run/{metric}/{r}" for r in "abc"
        ]
    assert not [i for i in ids if i.endswith("/pore")]
    assert {"crack", "macro", "a", "b", "c", "mean ± std", "IoU"} <= set(svg_texts(out))


def test_several_score_tables_pool_their_runs(cli, tmp_path, scores):
    other = tmp_path / "again.parquet"
    other.write_bytes(scores.read_bytes())
    sources = tables.open_sources([str(scores), str(other)], ["first", "second"])
    runs = curves.read_runs(sources, tables.choose_series(sources, None), ["f2"])
    assert runs.runs == ["first:a", "first:b", "first:c", "second:a", "second:b", "second:c"]
    np.testing.assert_allclose(runs.values["f2"][:3], runs.values["f2"][3:])


def test_scatter_has_a_point_per_run_and_class_in_both_panels(cli, tmp_path, scores):
    out = tmp_path / "scatter.svg"
    result = cli("plot", scores, "--kind", "scatter", "--classes", "1,2", "-o", out)
    assert result.exit_code == 0, result.output
    points = sorted(i for i in svg_ids(out) if i.startswith("point/"))
    expected = sorted(
        f"point/{panel}/{run}/{c}"
        for panel in ("fpr-recall", "recall-precision")
        for run in "abc"
        for c in ("crack", "pore")
    )
    assert points == expected
    assert {"TPR vs FPR", "precision vs recall", "FPR", "precision"} <= set(svg_texts(out))


def test_scatter_points_sit_at_the_runs_scores(scores):
    sources = tables.open_sources([str(scores)])
    figure = build_figure("scatter", sources, PlotOptions(classes=["pore"]))
    rows = pq.read_table(scores).to_pylist()
    for run in "abc":
        (row,) = [r for r in rows if r["run"] == run and r["class_name"] == "pore"]
        (point,) = [
            line
            for line in figure.axes[0].get_lines()
            if line.get_gid() == f"point/fpr-recall/{run}/pore"
        ]
        assert (point.get_xdata()[0], point.get_ydata()[0]) == pytest.approx(
            (row["fpr"], row["recall"])
        )


def test_a_table_on_stdin(cli, tmp_path, scores):
    out = tmp_path / "runs.png"
    result = cli("plot", "-", "-o", out, input=scores.read_bytes())
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC["png"])
    assert "stdin" in result.output


# -- tune-oii logs -----------------------------------------------------------------------------


def _band(figure) -> list[tuple[float, float]]:
    (panel,) = figure.axes
    return [
        (patch.get_y(), patch.get_y() + patch.get_height())
        for patch in panel.patches
        if (patch.get_gid() or "").startswith("band/")
    ]


def test_tune_draws_value_against_oii_over_the_recorded_band(tmp_path):
    write_tune_log(tmp_path / "tune", target=(0.3, 0.4))
    sources = tables.open_sources([str(tmp_path / "tune")])
    search = curves.read_tune(sources[0])
    assert search.param == "alpha" and search.target == (0.3, 0.4)
    np.testing.assert_allclose(search.values, [0.5, 0.7, 0.6])
    np.testing.assert_allclose(search.oii, [0.126, 1.0, 0.344], atol=1e-3)
    figure = build_figure("tune", sources, PlotOptions())
    assert _band(figure) == [pytest.approx((0.3, 0.4))]
    (line,) = [x for x in figure.axes[0].get_lines() if x.get_gid() == "search/tune"]
    np.testing.assert_allclose(line.get_xdata(), [0.5, 0.7, 0.6])
    np.testing.assert_allclose(line.get_ydata(), search.oii)
    assert [t.get_text() for t in figure.axes[0].texts] == ["1", "2", "3"]
    assert figure.axes[0].get_xlabel() == "alpha"
    override = build_figure("tune", sources, PlotOptions(target=(0.1, 0.2)))
    assert _band(override) == [pytest.approx((0.1, 0.2))]


def test_tune_log_without_metadata_and_the_target_option(cli, tmp_path):
    write_tune_log(tmp_path / "tune")
    bare = tmp_path / "bare.parquet"
    pq.write_table(
        pq.read_table(tmp_path / "tune" / "steps.parquet").replace_schema_metadata(None), bare
    )
    sources = tables.open_sources([str(bare)])
    assert tables.detect_kind(sources[0]) == "tune"
    assert curves.read_tune(sources[0]).param == "alpha"  # the column after 'step'
    assert _band(build_figure("tune", sources, PlotOptions())) == []
    out = tmp_path / "tune.pdf"
    result = cli("plot", bare, tmp_path / "tune", "--target", "0.2,0.5", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(MAGIC["pdf"])


# -- output and options ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["fig.jpg", "fig", "-", "fig.png.txt"])
def test_a_figure_name_without_png_svg_pdf_is_a_usage_error(cli, tmp_path, scores, name):
    result = cli("plot", scores, "-o", tmp_path / name if name != "-" else name)
    assert result.exit_code == 2
    assert ".png, .svg or .pdf" in one_line_error(result)
    assert list(tmp_path.iterdir()) == []


def test_existing_output_is_kept_without_force_and_replaced_with_it(cli, tmp_path, scores):
    out = tmp_path / "runs.PNG"
    out.write_bytes(b"keep me")
    refused = cli("plot", scores, "-o", out)
    assert refused.exit_code == 1 and "already exists (pass --force" in one_line_error(refused)
    assert out.read_bytes() == b"keep me"
    forced = cli("plot", scores, "-o", out, "--force")
    assert forced.exit_code == 0, forced.output
    assert out.read_bytes().startswith(MAGIC["png"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs.PNG"]  # no temporary left


def test_same_command_gives_the_same_file(cli, tmp_path, scores, monkeypatch):
    """No date in the file; the command line (its provenance) is the same in both folders."""
    for suffix in ("svg", "pdf", "png"):
        for folder in ("first", "second"):
            (tmp_path / folder).mkdir(exist_ok=True)
            monkeypatch.chdir(tmp_path / folder)
            assert cli("plot", scores, "--kind", "scatter", "-o", f"f.{suffix}").exit_code == 0
        first, second = (tmp_path / folder / f"f.{suffix}" for folder in ("first", "second"))
        assert first.read_bytes() == second.read_bytes(), suffix


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--classes", "rust"], "--classes: no class or level 'rust'"),
        (["--metric", "f9"], "--metric f9: no such score column"),
        (["--kind", "scatter", "--metric", "f2"], "--metric applies to --kind log and runs"),
        (["--target", "0.3,0.4"], "--target applies to tune-oii logs"),
        (["--label", "one", "--label", "two"], "--label given 2 times for 1 TABLE"),
        (["--target", "0.4,0.3"], "expected finite m0 < m1"),
    ],
)
def test_bad_selections_are_usage_errors(cli, tmp_path, scores, args, message):
    result = cli("plot", scores, *args, "-o", tmp_path / "f.svg")
    assert result.exit_code == 2, result.output
    assert message in one_line_error(result)
    assert not (tmp_path / "f.svg").exists()


def test_labels_name_the_tables_in_the_legend(cli, tmp_path):
    for name in ("x", "y"):
        write_training_log(tmp_path / name / "run" / "log.parquet", seed=1)
    out = tmp_path / "f.svg"
    result = cli(
        "plot", tmp_path / "x" / "run", tmp_path / "y" / "run", "-o", out, "--metric", "f2"
    )
    assert result.exit_code == 0, result.output
    assert {"loss/x/run", "loss/y/run"} <= set(svg_ids(out))  # clashing names: parent folders
    result = cli(
        "plot",
        tmp_path / "x" / "run",
        tmp_path / "y" / "run",
        "--label",
        "Tversky",
        "--label",
        "Dice",
        "--force",
        "-o",
        out,
    )
    assert result.exit_code == 0, result.output
    assert {"Tversky", "Dice", "Tversky crack", "Dice pore"} <= set(svg_texts(out))


def test_only_plot_imports_matplotlib():
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "from tinyseg_cli.cli.main import app\n"
        "for args in (['--help'], ['score', '--help'], ['plot', '--help']):\n"
        "    assert CliRunner().invoke(app, args).exit_code == 0\n"
        "print(json.dumps('matplotlib' in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", "import json\n" + code], capture_output=True, text=True, check=True
    )
    assert json.loads(done.stdout) is False
