"""Where and how work runs: worker processes and ``--shard``, the torch device, DDP under
torchrun."""
