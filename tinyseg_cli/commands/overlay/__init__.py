"""``tinyseg overlay``: TP/FP/FN pictures, crops of the worst objects and a gallery (SPEC §4.9)."""
