"""``tinyseg infer``: predictions of images (2D) or voxel tables (3D) from checkpoints
(SPEC §4.6)."""
