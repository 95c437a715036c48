"""The release flow: one model release as the list of its stages.

prepare -> validation gate -> training hand-off -> quality gate -> ONNX export + parity + CPU candidates
-> servability (in-process) -> registration -> TensorRT hand-off -> serving image -> servability (the
image itself) -> canary -> promote or roll back.

Orchestration only: each stage is a task in `tasks/` over one function in `slipway.release.stages`,
returning one `StageOutcome`; the `Ledger` keeps them and decides (see its docstring). A stage that
rejects or fails ends the release; whatever happens, the decision is concluded in the registry,
published as artifacts and written to `reports/release-*.json`.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from prefect.states import Failed
from tasks.artifacts import publish_artifacts
from tasks.canary import canary_deploy
from tasks.optimize import optimize, tensorrt
from tasks.package import build_image, check_servable, smoke_test
from tasks.prepare import prepare_release
from tasks.quality_gate import gate
from tasks.register import conclude_release, publish_decision, register
from tasks.train import train
from tasks.validate import validate

from slipway.names import Stage
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, Ledger
from slipway.release.outcome import StageOutcome
from slipway.release.pipeline import Step, run_stages

STAGES: tuple[tuple[Stage, Step], ...] = (
    ("validation", validate),
    ("training", train),
    ("quality_gate", gate),
    ("optimize", optimize),
    ("servability", check_servable),
    ("register", register),
    ("tensorrt", tensorrt),
    ("image", build_image),
    ("servability", smoke_test),
    ("canary", canary_deploy),
)


@flow(
    name="release",
    description="Validate, train or accept, gate, export and optimize, register, package, canary and promote "
    "(or roll back) one model release.",
)
def release(
    data: str | None = None,
    model_uri: str | None = None,
    config_path: str = "slipway.yaml",
    canary_fault: str | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """Run one release; returns the ReleaseResult as a dict (also written to `reports/release-*.json`).

    `data`: a batch file, a folder or an http(s)/file URL; None takes the newest batch(es) in
    `batches.location`. `commit`: the pushed SHA that triggered it (must be the checkout's commit).
    `canary_fault` starts the canary with one of the server's fault kinds (demos and tests).
    """
    ledger = Ledger()
    ctx = _prepare(ledger, config_path, data, model_uri, commit, canary_fault)
    if ctx is not None:
        run_stages(ledger, ctx, STAGES, runner=_as_task, on_outcome=lambda o: publish_artifacts(o.artifacts))
        _conclude(ledger, ctx)
    result = ledger.result(flow_run_id=str(flow_run.id) if flow_run.id else None)
    publish_decision(result)
    # an error fails the run (CI and automations see it); its report and artifacts are written all the same
    if result.decision == "error":
        cause = next((r for r in result.reasons if r.startswith("ERROR")), f"error at stage {result.stage}")
        return Failed(message=cause[:500], data=result.as_json_dict())  # type: ignore[return-value]
    return result.as_json_dict()


def run_release(**parameters: Any) -> dict[str, Any]:
    """Blocking; runs the flow in this process and returns its ReleaseResult dict, errors included (a
    release that ended in `error` is a Failed run carrying the same dict); re-raises only a crash."""
    state = release(**parameters, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, BaseException):
        raise result
    if not isinstance(result, dict):
        raise RuntimeError(f"the release flow ended {state.name} without a result: {state.message}")
    return result


def _prepare(
    ledger: Ledger,
    config_path: str,
    data: str | None,
    model_uri: str | None,
    commit: str | None,
    canary_fault: str | None,
) -> ReleaseContext | None:
    with ledger.timing("prepare"):
        state = prepare_release(config_path, data, model_uri, commit, canary_fault, return_state=True)
    try:
        ctx: ReleaseContext = state.result()
    except Exception as exc:
        ledger.fail("prepare", exc)
        return None
    ledger.begin(ctx)
    return ctx


def _as_task(step: Step, ctx: ReleaseContext, evidence: Evidence) -> tuple[StageOutcome[Any], bool]:
    """Runs a stage's task; its outcome and whether Prefect's result cache answered."""
    state = step(ctx, evidence, return_state=True)
    return state.result(), state.name == "Cached"


def _conclude(ledger: Ledger, ctx: ReleaseContext) -> None:
    with ledger.timing("conclude"):
        state = conclude_release(ctx, ledger, return_state=True)
    try:
        ledger.apply(state.result())
    except Exception as exc:  # the decision stands; say that the registry may not show it
        ledger.note(f"ERROR recording the decision in the registry: {type(exc).__name__}: {exc}")
