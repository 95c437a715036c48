"""The release flow: one model release as the list of its stages.

prepare -> validation gate -> feature consistency (feature-store projects) -> training hand-off -> quality gate -> ONNX export + parity + CPU candidates
-> servability (in-process) -> registration -> TensorRT hand-off -> serving image -> servability (the
image itself) -> canary -> promote or roll back.

Orchestration only: each stage is a task in `tasks/` over one function in `slipway.release.stages`,
returning one `StageOutcome`; the `Ledger` keeps them and decides (see its docstring). A stage that
rejects or fails ends the release; whatever happens, the decision is concluded in the registry,
published as artifacts and written to `reports/release-*.json`.

Where people look: once its inputs are known the run is named `<model> · <commit> · <trigger> · <id>`
and tagged with them; it ends `Completed` (promoted, registered), `Rejected`, `RolledBack` or
`Failed` (error) with the decision in the state message and `decision:` / `version:` tags
(`slipway.orchestration.run_labels` says why those states).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import State, flow, get_run_logger
from prefect.runtime import flow_run
from prefect.states import Completed, Failed
from tasks.artifacts import publish_artifacts
from tasks.canary import canary_deploy
from tasks.features import feature_consistency
from tasks.optimize import optimize, tensorrt
from tasks.package import build_image, check_servable, smoke_test
from tasks.prepare import prepare_release
from tasks.quality_gate import gate
from tasks.register import conclude_release, publish_decision, recover_environment, register
from tasks.run_labels import current_trigger, label_flow_run
from tasks.train import train
from tasks.validate import validate

from slipway.errors import DeployError
from slipway.locks.base import LockHeld
from slipway.names import Stage
from slipway.orchestration.remote import flow_run_url
from slipway.orchestration.run_labels import end_tags, final_state, is_labelled, run_name, start_tags
from slipway.release.context import ReleaseContext
from slipway.release.lease import release_lease
from slipway.release.ledger import Evidence, Ledger
from slipway.release.outcome import StageOutcome
from slipway.release.pipeline import Step, run_stages
from slipway.release.result import ReleaseResult
from slipway.settings import Settings

STAGES: tuple[tuple[Stage, Step], ...] = (
    ("validation", validate),
    ("feature_consistency", feature_consistency),
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
    run_id = str(flow_run.id) if flow_run.id else None
    trigger = current_trigger()
    ctx = _prepare(ledger, config_path, data, model_uri, commit, canary_fault)
    if ctx is not None:
        ctx = replace(ctx, trigger=trigger)
        _label_start(ctx.model_name, ctx.commit, trigger)
        log = get_run_logger().info
        try:
            # one release at a time per environment; first, what a killed release left is cleaned up
            with release_lease(ctx, settings=Settings(), log=log) as lease:
                ctx = replace(ctx, lease_key=lease.key)
                recovery = recover_environment(ctx, lease.holder.describe())
                ctx = replace(ctx, recovered_canary=recovery.removed_canary)
                for line in recovery.lines():
                    log(line)
                run_stages(
                    ledger,
                    ctx,
                    STAGES,
                    runner=_as_task,
                    on_outcome=lambda o: publish_artifacts(o.artifacts),
                    log=log,
                )
                _conclude(ledger, ctx, run_id)
        except (LockHeld, DeployError) as exc:  # not taken (held, or its backend unreachable): nothing ran
            if ledger.failure is None and not ledger.outcomes:
                ledger.fail("prepare", exc)
            else:
                raise
    result = ledger.result(flow_run_id=run_id)
    publish_decision(result)
    label_flow_run(tags=end_tags(result))
    return _final_state(result)  # type: ignore[return-value]


def _final_state(result: ReleaseResult) -> State[dict[str, Any]]:
    """Completed (promoted, registered), Rejected, RolledBack or Failed (error), each carrying the result."""
    spec = final_state(result)
    data = result.as_json_dict()
    if spec.failed:
        return Failed(name=spec.name, message=spec.message, data=data)
    return Completed(message=spec.message, data=data)


def _label_start(model: str, commit: str | None, trigger: str) -> None:
    name = flow_run.name or ""
    label_flow_run(
        name=None
        if is_labelled(name)
        else run_name(model=model, commit=commit, trigger=trigger, unique=name),
        tags=start_tags(model=model, commit=commit, trigger=trigger),
    )


def run_release(**parameters: Any) -> dict[str, Any]:
    """Blocking; runs the flow in this process and returns its ReleaseResult dict for every decision (a
    rejected, rolled-back or failed release is a FAILED-typed run carrying the same dict); re-raises only a crash."""
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


def _conclude(ledger: Ledger, ctx: ReleaseContext, run_id: str | None) -> None:
    with ledger.timing("conclude"):
        run_url = flow_run_url(run_id) if run_id else None
        state = conclude_release(ctx, ledger, run_id, run_url, return_state=True)
    try:
        ledger.apply(state.result())
    except Exception as exc:  # the decision stands; say that the registry may not show it
        ledger.note(f"ERROR recording the decision in the registry: {type(exc).__name__}: {exc}")
