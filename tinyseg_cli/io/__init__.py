"""File formats: tables, rasters, palettes, class maps. Nothing outside this package opens files."""
