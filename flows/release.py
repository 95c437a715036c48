"""The release flow: validation gate -> training hand-off -> quality gate -> ONNX export + parity gate
-> CPU candidate selection -> servability check -> registration -> TensorRT hand-off (GPU pool, or
skipped) -> serving image (built, pushed, digest on the version; or skipped with what to install).

Orchestration only: every stage is a task in `tasks/` over logic in `slipway.release.steps`.
Later stages (optimize, build, canary, promote) extend this same flow.
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from tasks.canary import canary_deploy
from tasks.evaluate import evaluate_challenger, evaluate_champion, gate
from tasks.optimize import OptimizationFailed, optimize_model, tensorrt_handoff
from tasks.package import build_serving_image, check_servable
from tasks.prepare import prepare_release
from tasks.register import publish_decision, record_rejection, register
from tasks.train import import_external, publish_training, train
from tasks.validate import publish_validation, validate

from slipway.data.reference import load_reference
from slipway.names import Tag
from slipway.optimize.stage import error_reasons_of, rejection_reasons
from slipway.release.clock import StageClock
from slipway.release.result import ReleaseResult
from slipway.release.steps import attach_optimization, build_registration, with_documents


def _finish(result: ReleaseResult, clock: StageClock, cached: list[str]) -> dict[str, Any]:
    result = result.model_copy(
        update={
            "timings_s": dict(clock.seconds),
            "cached": list(cached),
            "flow_run_id": str(flow_run.id) if flow_run.id else None,
        }
    )
    publish_decision(result)
    return result.as_json_dict()


@flow(name="release", description="Validate, train or accept, gate and register one model release.")
def release(
    data: str | None = None,
    model_uri: str | None = None,
    config_path: str = "slipway.yaml",
    canary_fault: str | None = None,
    commit: str | None = None,
) -> dict[str, Any]:
    """Run one release; returns the ReleaseResult as a dict.

    `data`: a batch file, a folder or an http(s)/file URL; None takes the newest batch(es) in
    `batches.location`. `commit`: the pushed SHA that triggered it (must be the checkout's commit).
    `canary_fault` starts the canary with one of the server's fault kinds (demos and tests).
    """
    clock, cached = StageClock(), list[str]()
    with clock.stage("prepare"):
        inputs = prepare_release(config_path, data, model_uri, commit)
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
        data_path=inputs.data_path,
        commit=inputs.git.get("requested") or inputs.git["commit"],
    )
    if not report.success:
        reasons = [f.line() for f in report.failures]
        return _finish(result.model_copy(update={"decision": "rejected", "reasons": reasons}), clock, cached)
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
        return _finish(
            result.model_copy(update={"decision": "rejected", "mlflow_run_id": run_id}), clock, cached
        )
    with clock.stage("optimize"):
        outcome = optimize_model(inputs, trained)
    if isinstance(outcome, OptimizationFailed):
        stage = "export" if outcome.stage in ("export", "onnx-check") else "optimize"
        failed = with_documents(registration, {"slipway/optimization_error.json": outcome.model_dump()})
        with clock.stage("record_rejection"):
            run_id = record_rejection(inputs, failed, stage=stage)
        reasons = [*decision.reasons, *error_reasons_of(outcome.stage, outcome.cause)]
        update: dict[str, Any] = {
            "decision": "rejected",
            "stage": stage,
            "mlflow_run_id": run_id,
            "reasons": reasons,
        }
        return _finish(result.model_copy(update=update), clock, cached)
    registration = attach_optimization(registration, outcome)
    summary: dict[str, Any] = {
        "parity": outcome.parity.summary(),
        "onnx_sha256": outcome.export.sha256,
        "opset": outcome.export.opset,
    }
    if not outcome.passed:
        with clock.stage("record_rejection"):
            run_id = record_rejection(inputs, registration, stage="parity")
        rejected: dict[str, Any] = {
            "decision": "rejected",
            "stage": "parity",
            "mlflow_run_id": run_id,
            "optimization": summary,
            "reasons": [*decision.reasons, *rejection_reasons(outcome)],
        }
        return _finish(result.model_copy(update=rejected), clock, cached)
    assert outcome.selection is not None  # passed implies a selection
    summary |= {
        "shipped": outcome.selection.shipped,
        "artifact": outcome.shipped_artifact(),
        "sha256": outcome.tags()[Tag.SHIPPED_SHA256],
    }
    with clock.stage("servability"):
        servable = check_servable(inputs, outcome)
    if not servable.passed:
        with clock.stage("record_rejection"):
            run_id = record_rejection(
                inputs,
                with_documents(registration, {"slipway/servability.json": servable.model_dump()}),
                stage="servability",
            )
        rejected = {
            "decision": "rejected",
            "stage": "servability",
            "mlflow_run_id": run_id,
            "optimization": summary,
            "reasons": [
                *decision.reasons,
                f"FAIL: {servable.summary()}",
                "the champion is untouched; nothing was registered",
            ],
        }
        return _finish(result.model_copy(update=rejected), clock, cached)
    registration = with_documents(registration, {"slipway/servability.json": servable.model_dump()})
    with clock.stage("register"):
        version = register(inputs, registration)
    with clock.stage("tensorrt"):
        trt = tensorrt_handoff(inputs, version)
    with clock.stage("image"):
        image = build_serving_image(inputs, outcome, version)
    reasons = [
        *decision.reasons,
        outcome.parity.summary(),
        *outcome.selection.reasons[:1],
        servable.summary(),
        f"registered as version {version.version} with alias challenger",
        f"tensorrt: {trt}",
        image.summary(),
    ]
    if image.status == "failed":
        failed_image: dict[str, Any] = {
            "decision": "error",
            "stage": "image",
            "model_version": version.version,
            "mlflow_run_id": version.run_id,
            "optimization": summary,
            "tensorrt": trt,
            "image": image.model_dump(mode="json"),
            "reasons": [
                *reasons,
                "the champion is untouched; the version stays a challenger without an image",
            ],
        }
        return _finish(result.model_copy(update=failed_image), clock, cached)
    registered: dict[str, Any] = {
        "decision": "registered",
        "stage": "register",
        "model_version": version.version,
        "mlflow_run_id": version.run_id,
        "optimization": summary,
        "tensorrt": trt,
        "image": image.model_dump(mode="json"),
        "reasons": reasons,
    }
    if cfg.deploy.target == "none":
        return _finish(result.model_copy(update=registered), clock, cached)
    with clock.stage("canary"):
        deployed = canary_deploy(inputs, outcome, version, image, canary_fault)
    registered |= {
        "decision": deployed.result,
        "stage": "canary",
        "deploy": deployed.model_dump(mode="json"),
        "reasons": [
            *reasons,
            f"canary {deployed.result}: {deployed.reason}",
            f"serving: version {deployed.stable_version}",
        ],
    }
    return _finish(result.model_copy(update=registered), clock, cached)
