"""Slipway: an ML release pipeline as Prefect flows over one library."""

__version__ = "0.1.0"
