"""Benchmarks behind `make bench`: each runs the production code paths and writes JSON + markdown."""
