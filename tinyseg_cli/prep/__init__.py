"""Data preparation: pure functions over arrays and tables (splits, patch sampling)."""
