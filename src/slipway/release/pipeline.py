"""Running a release's stages in order over one ledger: the loop the flow (and its tests) drive.

Each step is `(ctx, evidence) -> StageOutcome`; a `Runner` calls it (the flow runs it as a Prefect
task and reports cache hits; tests call it directly). A step that raises ends the release as an
error at its stage; an outcome that rejects or errs ends it there too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from slipway.names import Stage
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, Ledger
from slipway.release.outcome import StageOutcome

Step = Callable[..., Any]
"""A stage step: called by its runner with (ctx, evidence); a plain stage function or a Prefect task."""

Runner = Callable[[Step, ReleaseContext, Evidence], tuple[StageOutcome[Any], bool]]
"""Runs one step: (its outcome, whether that outcome came from the result cache); raises what the step raised."""


def call_directly(step: Step, ctx: ReleaseContext, evidence: Evidence) -> tuple[StageOutcome[Any], bool]:
    """The plain runner: call the step, no cache."""
    outcome: StageOutcome[Any] = step(ctx, evidence)
    return outcome, False


def run_stages(
    ledger: Ledger,
    ctx: ReleaseContext,
    stages: Sequence[tuple[Stage, Step]],
    *,
    runner: Runner = call_directly,
    on_outcome: Callable[[StageOutcome[Any]], None] | None = None,
) -> None:
    """Blocking (the stages' time); runs `stages` in order until one stops the release or raises."""
    for stage, step in stages:
        with ledger.timing(stage):
            try:
                outcome, cached = runner(step, ctx, ledger.evidence)
            except Exception as exc:
                ledger.fail(stage, exc)
                return
        if on_outcome is not None:
            on_outcome(outcome)
        if not ledger.record(outcome.with_cached(cached), name=stage):
            return
