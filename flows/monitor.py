"""The monitor flow: judge live traffic against the champion's reference; on drift or a quality breach,
start the `retrain` deployment once per drift episode, tagged with the report that found it.

Orchestration only (the verdict, the report and the episode rules live in `slipway.monitoring`). The
run ends Completed whatever the verdict (the monitor did its job; its message says what it found) and
Failed when it could not judge (no champion, no logs, an empty window, mismatched rows).
"""

from __future__ import annotations

from typing import Any, cast

from prefect import State, flow, get_run_logger
from prefect.client.schemas.objects import FlowRun
from prefect.deployments import run_deployment
from prefect.states import Completed, Failed
from tasks.artifacts import publish_artifacts
from tasks.monitor import episode, judge_window

from slipway.config import load_config


@flow(
    name="monitor",
    description="Drift and live quality vs the champion's training reference; retrain on evidence.",
)
def monitor(
    config_path: str = "slipway.yaml",
    since: str | None = None,
    data: str | None = None,
    labels: str | None = None,
    retrain_deployment: str | None = None,
) -> dict[str, Any]:
    """One monitor run. `retrain_deployment` (default `monitor.retrain_deployment`) is started with tag
    `trigger:drift:<report id>` when this run opens a drift episode; "" starts nothing."""
    log = get_run_logger().info
    state = judge_window(config_path, since, data, labels, return_state=True)
    try:
        result, artifacts = state.result()
    except Exception as exc:
        return cast(dict[str, Any], Failed(message=f"not judged: {exc}"))
    publish_artifacts(artifacts)
    summary = result.summary_json()
    for line in result.lines():
        log(line)
    if result.verdict.status == "error":
        return cast(dict[str, Any], Failed(message="; ".join(result.verdict.reasons), data=summary))
    step = episode(config_path, result)
    log(step.reason)
    out = {**summary, "episode": step.episode, "episode_rule": step.rule, "retrain_flow_run_id": None}
    deployment = load_config_retrain(config_path) if retrain_deployment is None else retrain_deployment
    if step.retrain and deployment:
        run = cast(
            FlowRun,
            run_deployment(
                deployment,
                parameters={"config_path": config_path},
                timeout=0,  # start it; the retrain (and its release) run on their own
                as_subflow=False,
                tags=[f"trigger:drift:{result.report_id}"],
            ),
        )
        out["retrain_flow_run_id"] = str(run.id)
        log(f"started {deployment} (flow run {run.id}) for episode {step.episode}")
    return cast(dict[str, Any], _final(out))


def load_config_retrain(config_path: str) -> str:
    """The configured retrain deployment (`monitor.retrain_deployment`)."""
    from pathlib import Path

    return load_config(Path(config_path)).monitor.retrain_deployment


def _final(out: dict[str, Any]) -> State[dict[str, Any]]:
    status = out["status"]
    started = f"; retrain started ({out['retrain_flow_run_id']})" if out["retrain_flow_run_id"] else ""
    return Completed(
        message=f"{status}: {', '.join(out['drifted_columns']) or 'no drifted column'}{started}", data=out
    )
