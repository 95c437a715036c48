"""Running a release's stages in order over one ledger: the loop the flow (and its tests) drive.

Each step is `(ctx, evidence) -> StageOutcome`; a `Runner` calls it (the flow runs it as a Prefect
task and reports cache hits; tests call it directly). A step that raises ends the release as an
error at its stage; an outcome that rejects or errs ends it there too.
"""

from __future__ import annotations

import time
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

ACTIVITY: dict[str, str] = {
    "validation": "validating the batch against the expectation suite (Great Expectations, Data Docs)",
    "training": "training with the configured entrypoint, or loading the --model-uri model",
    "quality_gate": "scoring the challenger and the champion on the fixed holdout",
    "optimize": "exporting to ONNX, checking parity, timing the CPU candidates (tens of seconds)",
    "servability": "serving the shipped model in a real server and comparing its answers",
    "register": "registering the version in MLflow with its lineage and files",
    "tensorrt": "handing the ONNX model to the GPU pool, or skipping TensorRT",
    "image": "building and pushing the serving image",
    "canary": "canarying the version against the champion (weight, checks and evidence per window)",
}
"""What each stage is doing, for the one log line it gets when it starts."""


def started_line(stage: str) -> str:
    """Pure; the log line of a stage that starts."""
    return f"stage {stage}: {ACTIVITY.get(stage, 'running')}"


def ended_line(outcome: StageOutcome[Any], *, seconds: float, cached: bool) -> str:
    """Pure; the log line of a stage that concluded: verdict, time, the first reason."""
    why = outcome.cause or next(iter(outcome.reasons), "")
    how = " (cached)" if cached else ""
    return f"stage {outcome.stage}: {outcome.verdict}{how} in {seconds:.1f} s" + (f": {why}" if why else "")


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
    log: Callable[[str], None] | None = None,
) -> None:
    """Blocking (the stages' time); runs `stages` in order until one stops the release or raises.

    `log` gets one line when a stage starts (what it does) and one when it ends (verdict, seconds, why).
    """
    say = log or (lambda line: None)
    for stage, step in stages:
        say(started_line(stage))
        start = time.perf_counter()
        with ledger.timing(stage):
            try:
                outcome, cached = runner(step, ctx, ledger.evidence)
            except Exception as exc:
                ledger.fail(stage, exc)
                say(
                    f"stage {stage}: error after {time.perf_counter() - start:.1f} s: {type(exc).__name__}: {exc}"
                )
                return
        say(ended_line(outcome, seconds=time.perf_counter() - start, cached=cached))
        if on_outcome is not None:
            on_outcome(outcome)
        if not ledger.record(outcome.with_cached(cached), name=stage):
            return
