"""Engines: the steps of each command, composed from io and the pure libraries."""
