"""2D inference (SPEC §4.6): full-region passes padded to the network stride, sliding-window
tiles with blended logits written a band of rows at a time, resize-back, binary thresholds
and one-vs-rest fusion.

- ``predict``: :func:`predict_labels` / :func:`predict_logits` for images in memory
  (training validation);
- ``stream``: one image through one model or a fusion, as bands of finished rows (``infer``);
- ``tiled`` / ``padding``: the grid of tiles, the blending, the padding;
- ``heads`` / ``fusion`` / ``resize``: from logits to probabilities and labels;
- ``model`` / ``runtime``: a checkpoint ready to run, and how it runs.
"""

from tinyseg_cli.inference.predict import TileOptions, predict_labels, predict_logits

__all__ = ["TileOptions", "predict_labels", "predict_logits"]
