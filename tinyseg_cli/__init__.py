"""tinyseg: composable command-line tools for segmentation of tiny, imbalanced targets."""

__version__ = "0.1.0"
