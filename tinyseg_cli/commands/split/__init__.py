"""``tinyseg split``: grouped, leak-free splits, folds and regions (SPEC §4.1)."""
