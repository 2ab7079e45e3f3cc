"""Cut a LAS/LAZ point cloud at a fraction of its X extent into two scenes, west and east.

3D splits go by scene, never by voxel (a scene's voxels are neighbours, so a voxel-level
split would leak); a single survey becomes two scenes this way:

    python examples/split_las.py scan.laz --at 0.65 -o scans   # scans/west.laz, scans/east.laz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import laspy
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="LAS or LAZ file")
    parser.add_argument("--at", type=float, default=0.5, help="cut at this share of the X extent")
    parser.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    args = parser.parse_args()
    las = laspy.read(args.source)
    low, high = las.header.mins[0], las.header.maxs[0]
    cut = low + args.at * (high - low)
    x = np.asarray(las.x)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, keep in (("west", x < cut), ("east", x >= cut)):
        part = laspy.LasData(las.header)
        part.points = las.points[keep]
        path = args.out / f"{name}{args.source.suffix.lower()}"
        part.write(path)
        print(f"{path}: {int(keep.sum()):,} points")


if __name__ == "__main__":
    main()
