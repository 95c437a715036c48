"""`slipway remote ...`: trigger deployments on a Prefect API and wait for them (what CI runs on each push)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

remote_app = typer.Typer(
    help="Run deployments on a Prefect API (PREFECT_API_URL) and wait for the result.", no_args_is_help=True
)


@remote_app.command("release")
def remote_release(
    commit: Annotated[
        str | None, typer.Option("--commit", help="Commit SHA that triggered the release (a flow parameter).")
    ] = None,
    data: Annotated[
        str | None,
        typer.Option(
            "--data",
            help="Data location on the worker (file, folder or http(s) URL); default: batches.location.",
        ),
    ] = None,
    deployment: Annotated[
        str, typer.Option("--deployment", help="Deployment to run, as FLOW/DEPLOYMENT.")
    ] = "release/release",
    config_path: Annotated[
        str, typer.Option("--config-path", help="slipway.yaml path on the worker (a flow parameter).")
    ] = "slipway.yaml",
    timeout: Annotated[
        float,
        typer.Option("--timeout", min=1, help="Seconds to wait for a terminal state (the run goes on)."),
    ] = 3600.0,
    poll: Annotated[float, typer.Option("--poll", min=0.2, help="Seconds between state polls.")] = 5.0,
    idempotency_key: Annotated[
        str | None,
        typer.Option(
            "--idempotency-key", help="Same key -> the same flow run (safe retries of this command)."
        ),
    ] = None,
    summary: Annotated[
        Path | None,
        typer.Option("--summary", help="Append a Markdown summary here (e.g. $GITHUB_STEP_SUMMARY)."),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the outcome as one JSON object on the last stdout line.")
    ] = False,
) -> None:
    """Run a release deployment and wait: exit 0 promoted/registered, 1 rejected/rolled back, 2 failed/timed out."""
    from slipway.orchestration.remote import run_deployment_and_wait
    from slipway.orchestration.summary import job_summary
    from slipway.settings import Settings

    parameters: dict[str, object] = {"config_path": config_path}
    if commit:
        parameters["commit"] = commit
    if data:
        parameters["data"] = data

    def show(state: str, message: str | None) -> None:
        typer.echo(f"{deployment}: {state}" + (f" ({message})" if message else ""), err=True)

    outcome = run_deployment_and_wait(
        deployment=deployment,
        parameters=parameters,
        timeout_s=timeout,
        poll_s=poll,
        idempotency_key=idempotency_key,
        # the flow names itself `<model> · <commit> · <trigger> · <id>` once it has read its config
        tags=[f"trigger:{'push' if os.environ.get('GITHUB_ACTIONS') == 'true' else 'remote'}"],
        on_state=show,
    )
    tracking = Settings().mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
    if summary is not None:
        with summary.open("a", encoding="utf-8") as fh:
            fh.write(job_summary(outcome, tracking_uri=tracking))
    typer.echo(
        f"release {outcome.decision}: flow run {outcome.flow_run_name} {outcome.state}"
        + (
            f", model version {outcome.summary['model_version']}"
            if outcome.summary.get("model_version")
            else ""
        )
        + (f"\n  {outcome.ui_url}" if outcome.ui_url else ""),
        err=as_json,
    )
    if as_json:
        sys.stdout.write(json.dumps(outcome.as_dict(), sort_keys=True) + "\n")
    raise typer.Exit(outcome.exit_code())
