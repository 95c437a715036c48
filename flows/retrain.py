"""The scheduled retraining flow: release the newest batch(es) from `batches.location`.

Orchestration only. The release it starts carries the trigger that started this run (`schedule`, the
monitor's `drift:<report id>`, `manual`), so the version's `slipway.trigger` says why it was trained. With `release_deployment` set (as the `retrain` deployment in prefect.yaml
does) the release runs through the `release` deployment, so its concurrency limit (one release
per environment, later runs queued) also covers scheduled runs; without it, in-process.
"""

from __future__ import annotations

from typing import Any, cast

from prefect import flow
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from tasks.retrain import plan
from tasks.run_labels import current_trigger

from flows.release import run_release
from slipway.orchestration.remote import read_summary
from slipway.orchestration.run_labels import decision_of_run


@flow(name="retrain", description="Release the newest batch(es) of batches.location (cron).")
def retrain(
    config_path: str = "slipway.yaml",
    release_deployment: str | None = None,
    timeout_s: float = 7200.0,
) -> dict[str, Any]:
    """One scheduled run: skipped when the champion already learned from the newest batch, else a release."""
    todo = plan(config_path)
    if todo.skip_reason:
        return {"decision": "skipped", "reasons": [todo.skip_reason], "data_path": todo.data_path}
    if release_deployment is None:  # every decision comes back as the result dict (see run_release)
        return run_release(data=todo.data_path, config_path=config_path)
    run = cast(
        FlowRun,
        run_deployment(
            release_deployment,
            parameters={"data": todo.data_path, "config_path": config_path},
            timeout=timeout_s,
            as_subflow=True,
            tags=[f"trigger:{current_trigger()}"],  # its own: schedule, drift:<report id>, manual
        ),
    )  # called from sync code: returns the FlowRun, not a coroutine
    from prefect import get_client

    with get_client(sync_client=True) as client:
        summary = read_summary(client, flow_run_id=run.id)
    state = (run.state.name if run.state else None) or "Unknown"
    return {
        "decision": decision_of_run(state, summary.get("decision")),
        "release_flow_run_id": str(run.id),
        "release_state": state,
        "model_version": summary.get("model_version"),
        "data_path": todo.data_path,
    }
