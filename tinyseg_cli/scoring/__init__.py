"""Scoring shared by several commands: truth/prediction pairs and their counting, class pixel
counts, counts tables, object counts, and score reports (SPEC §3, §4.7, §5)."""
