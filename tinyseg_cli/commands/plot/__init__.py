"""``tinyseg plot``: figures of training logs, score runs and tune-oii steps (SPEC §4.9)."""
