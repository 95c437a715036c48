"""The release flow: validation gate -> training hand-off -> quality gate -> registration.

Orchestration only: every stage is a task in `tasks/` over logic in `slipway.release.steps`.
Later stages (optimize, build, canary, promote) extend this same flow.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from tasks.evaluate import evaluate_challenger, evaluate_champion, gate
from tasks.prepare import prepare_release
from tasks.register import publish_decision, record_rejection, register
from tasks.train import import_external, publish_training, train
from tasks.validate import publish_validation, validate

from slipway.data.reference import load_reference
from slipway.release.clock import StageClock
from slipway.release.result import ReleaseResult
from slipway.release.steps import build_registration


def _finish(result: ReleaseResult) -> dict[str, Any]:
    result.flow_run_id = str(flow_run.id) if flow_run.id else None
    publish_decision(result)
    return result.as_json_dict()


@flow(name="release", description="Validate, train or accept, gate and register one model release.")
def release(data: str, model_uri: str | None = None, config_path: str = "slipway.yaml") -> dict[str, Any]:
    """Run one release of the batch at `data`; returns the ReleaseResult as a dict."""
    clock, cached = StageClock(), []
    with clock.stage("prepare"):
        inputs = prepare_release(config_path, data, model_uri)
        cfg = inputs.config()
    with clock.stage("validation"):
        state = validate(inputs, run_name=f"release-{inputs.data_sha256[:12]}", return_state=True)
        report = state.result()
        cached += ["validation"] if state.name == "Cached" else []
        publish_validation(report)
    result = ReleaseResult(
        decision="error",
        stage="validation",
        model_name=cfg.registry.model_name,
        data_docs=report.data_docs,
        cached=cached,
        timings_s=clock.seconds,
    )
    if not report.success:
        reasons = [f.line() for f in report.failures]
        return _finish(result.model_copy(update={"decision": "rejected", "reasons": reasons}))
    with clock.stage("training"):
        if model_uri:
            trained = import_external(inputs, model_uri)
        else:
            tstate = train(inputs, return_state=True)
            trained = tstate.result()
            cached += ["training"] if tstate.name == "Cached" else []
    with clock.stage("quality_gate"):
        metrics = evaluate_challenger(inputs, trained)
        publish_training(trained, metrics)
        champion = evaluate_champion(inputs)
        decision = gate(inputs, metrics, champion)
    registration = build_registration(
        inputs,
        trained=trained,
        metrics=metrics,
        gate=decision,
        validation=report,
        ref=load_reference(cfg.data),
    )
    result = result.model_copy(
        update={
            "stage": "quality_gate",
            "metrics": metrics,
            "champion_version": decision.champion_version,
            "lineage": registration.tags,
            "reasons": decision.reasons,
        }
    )
    if not decision.passed:
        with clock.stage("record_rejection"):
            run_id = record_rejection(inputs, registration, stage="quality_gate")
        return _finish(result.model_copy(update={"decision": "rejected", "mlflow_run_id": run_id}))
    with clock.stage("register"):
        version = register(inputs, registration)
    return _finish(
        result.model_copy(
            update={
                "decision": "registered",
                "stage": "register",
                "model_version": version.version,
                "mlflow_run_id": version.run_id,
                "reasons": [
                    *decision.reasons,
                    f"registered as version {version.version} with alias challenger",
                ],
            }
        )
    )
