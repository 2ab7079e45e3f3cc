"""``tinyseg score``: counts and metrics of predictions against truth, 2D and 3D (SPEC §4.7, §5)."""
