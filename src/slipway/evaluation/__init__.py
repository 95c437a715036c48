"""Holdout evaluation: metrics and model scoring under the model contract."""
