"""Training data: samples of a split manifest, patch datasets, augmentations, statistics."""
