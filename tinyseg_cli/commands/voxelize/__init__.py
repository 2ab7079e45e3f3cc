"""``tinyseg voxelize``: LAS/LAZ point clouds to a voxel table and a point map (SPEC §4.4)."""
