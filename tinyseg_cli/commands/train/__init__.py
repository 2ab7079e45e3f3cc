"""``tinyseg train``: one training loop over a modality, 2D images (``image/``) or 3D voxel
tables (``voxel/``) (SPEC §4.5)."""
