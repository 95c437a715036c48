"""Data: the reference dataset, its fixed holdout, batch files and the batch generator."""
