"""Thin Prefect task wrappers over the `slipway` library: retries, timeouts and caching live here."""
