"""``tinyseg classweights``: class counts of the training rows, then the weights of SPEC §6.2."""
