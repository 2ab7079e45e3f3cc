"""``tinyseg resample``: class-aware patch tables from the training rows (SPEC §4.2)."""
