"""The artifact layer: tables, atomic writes, provenance, class maps, palettes, rasters, sources."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.ipc as pa_ipc
import pyarrow.parquet as pq
import pytest
import tifffile
from conftest import write_json, write_map

from tinyseg_cli.errors import TinysegError
from tinyseg_cli.io.atomic import atomic_path, check_output
from tinyseg_cli.io.classmap import ClassMap, class_map_from_metadata, parse_class_map
from tinyseg_cli.io.palette import UnknownColour, load_palette
from tinyseg_cli.io.provenance import fingerprint, provenance
from tinyseg_cli.io.rasters import _decode_png, _exported, open_label_map, read_raster
from tinyseg_cli.io.sources import resolve_maps
from tinyseg_cli.io.tables import read_table, table_metadata, with_metadata, write_table

TABLE = pa.table({"sample_id": ["a", "b"], "mask": ["m/a.png", "m/b.png"]})


def test_table_formats_are_detected_by_content(tmp_path: Path):
    pq.write_table(TABLE, tmp_path / "t.parquet")
    pa_csv.write_csv(TABLE, tmp_path / "t.csv")
    with pa_ipc.new_stream(tmp_path / "t.stream", TABLE.schema) as writer:
        writer.write_table(TABLE)
    with pa_ipc.new_file(tmp_path / "t.arrow", TABLE.schema) as writer:
        writer.write_table(TABLE)
    for name in ("t.parquet", "t.csv", "t.stream", "t.arrow"):
        assert read_table(tmp_path / name).to_pylist() == TABLE.to_pylist()


def test_unreadable_tables_are_one_line_errors(tmp_path: Path):
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "empty.parquet").write_bytes(b"")
    (tmp_path / "text.parquet").write_text("hello")
    for name, message in [
        ("bad.parquet", "unreadable table"),
        ("empty.parquet", "empty file"),
        ("text.parquet", "not a Parquet"),
        ("none.parquet", "no such file"),
    ]:
        with pytest.raises(TinysegError, match=message) as info:
            read_table(tmp_path / name)
        assert "\n" not in str(info.value)


def test_metadata_round_trip_and_provenance(tmp_path: Path):
    source = tmp_path / "in.txt"
    source.write_text("abc")
    record = provenance([source], argv=["/x/bin/tinyseg", "score", "--truth", "a b"])
    write_table(TABLE, tmp_path / "out.parquet", {"provenance": record, "classes": ["bg", "fg"]})
    meta = table_metadata(read_table(tmp_path / "out.parquet"))
    assert meta["classes"] == ["bg", "fg"]
    assert meta["provenance"]["command"] == "tinyseg score --truth 'a b'"
    # sha256 of b"abc"
    assert meta["provenance"]["inputs"][0]["sha256"] == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )
    assert class_map_from_metadata(meta) == ClassMap(("bg", "fg"))


def test_fingerprint_of_large_file_and_folder(tmp_path: Path, monkeypatch):
    import tinyseg_cli.io.provenance as prov

    monkeypatch.setattr(prov, "HASH_LIMIT", 2)
    (tmp_path / "big").write_bytes(b"12345")
    assert set(fingerprint(tmp_path / "big")) == {"path", "bytes", "mtime_ns"}
    assert fingerprint(tmp_path)["files"] == 1


def test_outputs_are_byte_identical_for_identical_inputs(tmp_path: Path):
    meta = {"provenance": {"command": "x"}}
    write_table(TABLE, tmp_path / "a.parquet", meta)
    write_table(TABLE, tmp_path / "b.parquet", meta)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()


def test_atomic_write_leaves_nothing_on_failure(tmp_path: Path):
    target = tmp_path / "out.parquet"
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_bytes(b"half")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_needs_force(tmp_path: Path):
    target = tmp_path / "out.parquet"
    target.write_bytes(b"old")
    with pytest.raises(TinysegError, match="--force"):
        check_output(target, force=False)
    check_output(target, force=True)
    check_output("-", force=False)


def test_class_map_sources(tmp_path: Path):
    assert parse_class_map("bg, crack,pore").names == ("bg", "crack", "pore")
    assert parse_class_map(str(write_json(tmp_path / "c.json", ["a", "b"]))).names == ("a", "b")
    indexed = write_json(tmp_path / "d.json", {"1": "fg", "0": "bg"})
    assert parse_class_map(str(indexed)).names == ("bg", "fg")
    table = pa.table({"class_index": [1, 0], "class_name": ["fg", "bg"]})
    pq.write_table(table, tmp_path / "w.parquet")
    assert parse_class_map(str(tmp_path / "w.parquet")).names == ("bg", "fg")
    with pytest.raises(TinysegError, match="repeated"):
        parse_class_map("a,a")
    with pytest.raises(TinysegError, match=r"0\.\.1"):
        parse_class_map(str(write_json(tmp_path / "e.json", {"0": "a", "2": "b"})))


def test_palette_maps_colours_and_reports_unknown(tmp_path: Path):
    palette = load_palette(
        write_json(tmp_path / "p.json", {"#000000": 0, "255,0,0": 1, "#00FF00": 2})
    )
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[0, 1] = (255, 0, 0)
    rgb[1, 2] = (0, 255, 0)
    assert palette.apply(rgb).tolist() == [[0, 1, 0], [0, 0, 2]]
    assert not palette.maps_grey
    rgb[1, 0] = (1, 2, 3)
    with pytest.raises(UnknownColour) as info:
        palette.apply(rgb)
    assert (info.value.colour, info.value.flat_index) == ("#010203", 3)


def test_grey_palette_maps_binary_png(tmp_path: Path):
    palette = load_palette(write_json(tmp_path / "p.json", {"0": 0, "255": 1}))
    mask = write_map(tmp_path / "m.png", np.array([[0, 255], [255, 0]], np.uint8))
    label_map = open_label_map(mask, "truth", palette=palette)
    assert label_map.rows(0, 2).tolist() == [[0, 1], [1, 0]]


@pytest.mark.parametrize("bad", [{"#zz0000": 1}, {"#000000": -1}, {"#000000": "a"}, []])
def test_palette_file_errors(tmp_path: Path, bad):
    with pytest.raises(TinysegError):
        load_palette(write_json(tmp_path / "p.json", bad))


def test_rgb_mask_file_with_palette_and_unknown_colour_position(tmp_path: Path):
    palette = load_palette(write_json(tmp_path / "p.json", {"#000000": 0, "#ff0000": 1}))
    rgb = np.zeros((4, 5, 3), np.uint8)
    rgb[2, 3] = (255, 0, 0)
    label_map = open_label_map(write_map(tmp_path / "m.png", rgb), "truth", palette=palette)
    assert label_map.rows(0, 4)[2, 3] == 1 and label_map.rows(0, 4).sum() == 1
    rgb[3, 1] = (9, 9, 9)
    label_map = open_label_map(write_map(tmp_path / "n.png", rgb), "truth", palette=palette)
    with pytest.raises(TinysegError, match=r"#090909 at pixel \(y=3, x=1\)"):
        label_map.rows(2, 4)
    with pytest.raises(TinysegError, match="needs a palette"):
        open_label_map(tmp_path / "n.png", "truth")


def test_probability_maps(tmp_path: Path):
    probs = np.array([[0.1, 0.5], [0.7, 0.49]], np.float32)
    path = write_map(tmp_path / "p.npy", probs)
    assert open_label_map(path, "prediction").rows(0, 2).tolist() == [[0, 1], [1, 0]]
    assert open_label_map(path, "prediction", threshold=0.6).rows(0, 2).tolist() == [[0, 0], [1, 0]]
    channels = np.stack([1 - probs, probs * 0.5, probs * 0.6])  # C×H×W, argmax
    path = write_map(tmp_path / "c.tif", channels.astype(np.float32))
    expected = np.argmax(channels, axis=0)
    assert np.array_equal(open_label_map(path, "prediction").rows(0, 2), expected)
    scaled = write_map(tmp_path / "s.png", np.array([[0, 127], [128, 255]], np.uint8))
    got = open_label_map(scaled, "prediction", threshold=0.5).rows(0, 2)
    assert got.tolist() == [[0, 0], [1, 1]]  # 128 >= 0.5 * 255 = 127.5
    nan = write_map(tmp_path / "n.npy", np.array([[0.1, np.nan]], np.float32))
    with pytest.raises(TinysegError, match=r"NaN or Inf probability at pixel \(y=0, x=1\)"):
        open_label_map(nan, "prediction").rows(0, 1)
    with pytest.raises(TinysegError, match="integer class labels"):
        open_label_map(tmp_path / "p.npy", "truth")


def test_raster_errors(tmp_path: Path):
    (tmp_path / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    (tmp_path / "bad.tif").write_bytes(b"II*\x00garbage")
    for name in ("bad.png", "bad.tif"):
        with pytest.raises(TinysegError, match="unreadable") as info:
            open_label_map(tmp_path / name, "truth")
        assert "\n" not in str(info.value)
    with pytest.raises(TinysegError, match="no such file"):
        open_label_map(tmp_path / "none.png", "truth")


def test_uncompressed_tiff_is_memory_mapped(tmp_path: Path):
    path = write_map(tmp_path / "m.tif", np.arange(12, dtype=np.uint8).reshape(3, 4))
    assert isinstance(open_label_map(path, "truth").raw, np.memmap)
    tifffile.imwrite(tmp_path / "z.tif", np.ones((3, 4), np.uint8), compression="zlib")
    assert open_label_map(tmp_path / "z.tif", "truth").rows(0, 3).sum() == 12


def test_compressed_tiffs_lzw_and_deflate(tmp_path: Path):
    from PIL import Image

    labels = np.zeros((40, 30), np.uint8)
    labels[3:5, 7:9], labels[20, 1] = 1, 2
    Image.fromarray(labels).save(tmp_path / "lzw.tif", compression="tiff_lzw")
    tifffile.imwrite(tmp_path / "deflate.tif", labels, compression="adobe_deflate")
    for name in ("lzw.tif", "deflate.tif"):
        assert np.array_equal(read_raster(tmp_path / name), labels)


@pytest.mark.parametrize("mode", ["L", "P", "1", "I;16", "LA", "RGB", "RGBA"])
def test_png_pixels_equal_pillows_array(tmp_path: Path, mode: str):
    from PIL import Image

    rng = np.random.default_rng(0)
    grey = rng.integers(0, 4, (37, 53)).astype(np.uint8)
    if mode == "P":
        image = Image.fromarray(grey, "L").convert("P")
        image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    elif mode == "I;16":
        image = Image.fromarray(grey.astype(np.uint16) * 300)
    else:
        image = Image.fromarray(grey * 60, "L").convert(mode)
    image.save(tmp_path / "m.png")
    with Image.open(tmp_path / "m.png") as reopened:
        expected = np.asarray(reopened)
    got = read_raster(tmp_path / "m.png")
    if mode == "1":  # a binary mask: labels 0 and 1
        expected = expected.astype(np.uint8)
        assert set(np.unique(got)) == {0, 1}
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)
    if mode == "P":
        assert np.array_equal(got, grey)  # palette indices, not colours


def test_png_larger_than_one_pillow_block(tmp_path: Path):
    from PIL import Image

    labels = np.zeros((4200, 4200), np.uint8)  # 17.6 MB: more than Pillow's 16 MB block
    labels[::97, ::13] = 2
    labels[-1, -1] = 1
    Image.fromarray(labels).save(tmp_path / "big.png")
    got = read_raster(tmp_path / "big.png")
    assert got.shape == labels.shape and np.array_equal(got, labels)
    # With Pillow's chained blocks the buffer cannot be handed over: the reader copies.
    Image.core.set_use_block_allocator(0)
    try:
        with Image.open(tmp_path / "big.png") as image:
            image.load()
            assert _exported(image) is None
        assert np.array_equal(_decode_png(tmp_path / "big.png"), labels)
    finally:
        Image.core.set_use_block_allocator(1)


def test_sources_folder_glob_file_and_manifest(tmp_path: Path):
    for stem in ("a", "b"):
        write_map(tmp_path / "masks" / f"{stem}.png", np.zeros((2, 2), np.uint8))
    (tmp_path / "masks" / "notes.txt").write_text("ignored")
    assert sorted(resolve_maps(str(tmp_path / "masks"))) == ["a", "b"]
    assert sorted(resolve_maps(str(tmp_path / "masks" / "a*"))) == ["a"]
    assert list(resolve_maps(str(tmp_path / "masks" / "b.png"))) == ["b"]
    manifest = pa.table(
        {
            "sample_id": ["x", "y"],
            "mask": ["masks/a.png", "masks/b.png"],
            "split": ["val", "train"],
            "y0": [0, None],
            "x0": [1, None],
            "y1": [2, None],
            "x1": [2, None],
        }
    )
    pq.write_table(manifest, tmp_path / "manifest.parquet")
    found = resolve_maps(str(tmp_path / "manifest.parquet"))
    assert found["x"].path == tmp_path / "masks" / "a.png"  # relative to the table
    assert found["x"].roi == (0, 1, 2, 2) and found["y"].roi is None
    assert list(resolve_maps(str(tmp_path / "manifest.parquet"), split="val")) == ["x"]


def test_source_errors(tmp_path: Path):
    write_map(tmp_path / "d" / "a.png", np.zeros((2, 2), np.uint8))
    write_map(tmp_path / "d" / "a.tif", np.zeros((2, 2), np.uint8))
    with pytest.raises(TinysegError, match="two files for sample 'a'"):
        resolve_maps(str(tmp_path / "d"))
    with pytest.raises(TinysegError, match="no such file"):
        resolve_maps(str(tmp_path / "nothing"))
    with pytest.raises(TinysegError, match="matches no file"):
        resolve_maps(str(tmp_path / "*.npy"))
    pq.write_table(pa.table({"sample_id": ["a"]}), tmp_path / "m.parquet")
    with pytest.raises(TinysegError, match="needs a column 'mask'"):
        resolve_maps(str(tmp_path / "m.parquet"))


def test_with_metadata_keeps_existing_keys():
    table = TABLE.replace_schema_metadata({b"other": b"1"})
    out = with_metadata(table, {"classes": ["a"]})
    assert out.schema.metadata[b"other"] == b"1"
    assert json.loads(out.schema.metadata[b"tinyseg.classes"]) == ["a"]


def test_atomic_outputs_get_the_usual_permissions(tmp_path: Path):
    """mkstemp creates 0600 files; a finished output has the mode any new file would get."""
    mask = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "out.parquet") as temporary:
            temporary.write_bytes(b"x")
    finally:
        os.umask(mask)
    assert (tmp_path / "out.parquet").stat().st_mode & 0o777 == 0o644


def write_jpeg(path: Path, array: np.ndarray) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path, "JPEG", quality=95)
    return path


def test_jpeg_images_are_read_but_never_as_maps(tmp_path: Path, cli):
    from tinyseg_cli.io.image_rows import image_size

    grey = np.full((12, 20), 200, np.uint8)  # flat: JPEG keeps a constant block exactly
    rgb = np.zeros((8, 16, 3), np.uint8)
    rgb[:] = (0, 0, 255)
    write_jpeg(tmp_path / "images" / "a.jpg", grey)
    write_jpeg(tmp_path / "images" / "b.JPEG", rgb)
    assert read_raster(tmp_path / "images" / "a.jpg").tolist() == grey.tolist()
    decoded = read_raster(tmp_path / "images" / "b.JPEG")
    assert decoded.shape == (8, 16, 3) and decoded.dtype == np.uint8
    assert image_size(tmp_path / "images" / "b.JPEG") == (8, 16)
    assert sorted(resolve_maps(str(tmp_path / "images"), images=True)) == ["a", "b"]
    with pytest.raises(TinysegError, match="only JPEG files, which can be images but not masks"):
        resolve_maps(str(tmp_path / "images"))
    with pytest.raises(TinysegError, match="ground truth cannot be JPEG"):
        open_label_map(tmp_path / "images" / "a.jpg", "truth")
    (tmp_path / "fake.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(TinysegError, match=r"fake\.jpg: unreadable JPG file"):
        read_raster(tmp_path / "fake.jpg")
    write_map(tmp_path / "masks" / "a.png", np.zeros((12, 20), np.uint8))
    write_map(tmp_path / "masks" / "b.png", np.ones((8, 16), np.uint8))
    out = tmp_path / "split.parquet"
    result = cli(
        "split", "--from-dir", tmp_path / "images", "--masks", tmp_path / "masks",
        "--ratios", "0.5,0.5", "--classes", "bg,defect", "-o", out, "-q",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert sorted(Path(p).name for p in pq.read_table(out)["image"].to_pylist()) == [
        "a.jpg", "b.JPEG",
    ]  # fmt: skip
