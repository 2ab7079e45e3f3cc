"""File names and suffixes that tell what a file or folder holds, shared by the readers and
by the output checks (which must know what a folder given as an input is read for)."""

from __future__ import annotations

RASTER_SUFFIXES = frozenset({".tif", ".tiff", ".png", ".npy"})
# Images may also be JPEG (the public inspection sets ship their photographs so); masks and
# predictions may not: JPEG's lossy blocks would invent labels along every edge.
JPEG_SUFFIXES = frozenset({".jpg", ".jpeg"})
IMAGE_SUFFIXES = RASTER_SUFFIXES | JPEG_SUFFIXES
# The tables tinyseg writes into an OUT_DIR that later commands read from the folder:
# infer's predictions, voxelize's voxel table and point map.
FOLDER_TABLES = frozenset({"predictions.parquet", "voxels.parquet", "points.parquet"})
