"""``tinyseg tune-oii``: the output-imbalance-guided search of a loss parameter (SPEC §4.8)."""
