"""Naming and tagging the running flow run (called from the flow: labels are no stage of their own).

A label that cannot be written (an API hiccup) is logged and skipped: it never changes a release.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.runtime import deployment, flow_run

from slipway.orchestration.run_labels import merged_tags, trigger_of


def current_trigger() -> str:
    """Blocking (one API read); what started this flow run: push, retrain, schedule, manual or local."""
    run_id = flow_run.id
    if run_id is None:
        return "local"
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(str(run_id)))
    except Exception as exc:  # never fail a release over its label
        get_run_logger().warning("could not read this flow run to label it: %s", exc)
        return trigger_of(
            tags=flow_run.tags or [], deployment=deployment.id is not None, auto_scheduled=False
        )
    return trigger_of(
        tags=run.tags, deployment=run.deployment_id is not None, auto_scheduled=run.auto_scheduled
    )


def label_flow_run(*, name: str | None = None, tags: Iterable[str] = ()) -> None:
    """Blocking (two API calls); renames this flow run (when `name`) and merges `tags` into its tags."""
    run_id = flow_run.id
    if run_id is None:
        return
    try:
        with get_client(sync_client=True) as client:
            run = client.read_flow_run(UUID(str(run_id)))
            client.update_flow_run(run.id, name=name or run.name, tags=merged_tags(run.tags, tags))
    except Exception as exc:
        get_run_logger().warning("could not label this flow run: %s", exc)
