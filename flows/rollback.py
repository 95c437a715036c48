"""The rollback flow: restore a former champion as the serving model, audited (who, when, why, from, to).

Orchestration only: one task in `tasks/rollback.py` over `slipway.ops.rollback`. `slipway rollback` runs
the same library function directly (no Prefect server to wait for in an incident).
"""

from __future__ import annotations

from typing import Any

from prefect import flow
from prefect.runtime import flow_run
from tasks.rollback import rollback_serving

from slipway.ops.rollback import default_actor


@flow(
    name="rollback",
    description="Audited rollback: redeploy a former champion on the deploy target, then move alias champion.",
)
def rollback(
    to_version: str | None = None, reason: str = "", config_path: str = "slipway.yaml"
) -> dict[str, Any]:
    """Roll back to `to_version` (default: the previous champion recorded on the champion); `reason` is required."""
    actor = f"{default_actor()} (prefect flow run {flow_run.name or flow_run.id})"
    result = rollback_serving(config_path, to_version, reason, actor)
    return result.model_dump(mode="json")
