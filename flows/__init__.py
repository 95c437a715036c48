"""Prefect flows: orchestration only. The logic lives in the `slipway` package."""
