"""The release's stages, one module each: `(ctx, evidence, ...clients) -> StageOutcome`, plain Python.

`flows/release.py` runs them in order through the thin tasks in `tasks/`; each reads what earlier
stages left in the ledger's `Evidence` and returns one `StageOutcome` (see `slipway.release.outcome`).
To add a stage: write its function here, a task for it in `tasks/`, and one line in `STAGES`.
"""
