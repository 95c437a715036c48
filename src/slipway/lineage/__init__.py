"""Lineage: where a model came from (code, data, suite, config, environment)."""
