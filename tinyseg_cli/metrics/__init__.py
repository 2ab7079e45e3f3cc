"""Confusion counts and the metrics of SPEC §5, as pure functions over numpy arrays."""
