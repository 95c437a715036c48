"""Run a deployment on a Prefect API (a server or Cloud), wait for its terminal state, read its release summary.

This is what `.github/workflows/release.yml` does on every push (through `infra/ci/release.sh` and
`slipway remote release`): the release runs on the team's worker, CI only watches it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from uuid import UUID

from slipway.errors import SlipwayError, UsageError
from slipway.names import exit_code
from slipway.orchestration.run_labels import decision_of_run

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

SUMMARY_KEY = "release-summary"


class RemoteRunError(SlipwayError):
    """The Prefect API refused or lost a run we asked for."""


@dataclass
class RemoteOutcome:
    """How a triggered run ended: Prefect's terminal state and the release's own summary (when it wrote one)."""

    deployment: str
    flow_run_id: str
    flow_run_name: str
    state: (
        str  # Prefect state name: Completed, Failed, Crashed, Cancelled, ... or TimedOut (we stopped waiting)
    )
    state_message: str | None
    summary: dict[str, str] = field(default_factory=dict)
    ui_url: str | None = None
    waited_s: float = 0.0

    @property
    def decision(self) -> str:
        """The release decision, from the final state (Completed, Rejected, RolledBack) and the summary;
        `error` when the run failed, crashed, timed out, or completed without a summary."""
        return decision_of_run(self.state, self.summary.get("decision"))

    def exit_code(self) -> int:
        """CLI contract: 0 promoted/registered, 1 rejected/rolled back, 2 the run failed, crashed or timed out."""
        return exit_code(self.decision)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "deployment": self.deployment,
            "flow_run_id": self.flow_run_id,
            "flow_run_name": self.flow_run_name,
            "state": self.state,
            "state_message": self.state_message,
            "decision": self.decision,
            "summary": self.summary,
            "ui_url": self.ui_url,
            "waited_s": round(self.waited_s, 1),
        }


def parse_table(data: Any) -> dict[str, str]:
    """Pure; a `release-summary` table artifact's data (JSON text or rows) as {field: full value}."""
    rows = json.loads(data) if isinstance(data, str) else data
    if not isinstance(rows, list):
        raise RemoteRunError(
            f"artifact {SUMMARY_KEY}: expected a table (list of rows), got {type(rows).__name__}"
        )
    return {
        str(r["field"]): str(r.get("full") or r.get("value") or "")
        for r in rows
        if isinstance(r, dict) and "field" in r
    }


def read_summary(client: SyncPrefectClient, *, flow_run_id: UUID) -> dict[str, str]:
    """Non-blocking read; the release summary artifact of one flow run ({} when it wrote none)."""
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    artifacts = client.read_artifacts(
        artifact_filter=ArtifactFilter(
            key=ArtifactFilterKey(any_=[SUMMARY_KEY]), flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])
        ),
        limit=1,
    )
    return parse_table(artifacts[0].data) if artifacts else {}


def flow_run_url(flow_run_id: str) -> str | None:
    """The flow run's page in the Prefect UI, when the UI URL is known (server or Cloud)."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{str(ui).rstrip('/')}/runs/flow-run/{flow_run_id}" if ui else None


def run_deployment_and_wait(
    *,
    deployment: str,
    parameters: dict[str, Any],
    timeout_s: float,
    poll_s: float = 5.0,
    idempotency_key: str | None = None,
    flow_run_name: str | None = None,
    tags: list[str] | None = None,
    on_state: Callable[[str, str | None], None] | None = None,
) -> RemoteOutcome:
    """Blocking up to `timeout_s`; creates a run of `deployment` (`flow/deployment`), waits, returns its outcome.

    Idempotent per `idempotency_key` (the API returns the existing run). A timeout stops waiting, not the run.
    """
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            dep = client.read_deployment_by_name(deployment)
        except ObjectNotFound:
            raise UsageError(
                f"deployment {deployment!r} not found on {client.api_url}: run `make deploy` "
                "(prefect deploy --all) against this API first"
            ) from None
        run = client.create_flow_run_from_deployment(
            dep.id, parameters=parameters, idempotency_key=idempotency_key, name=flow_run_name, tags=tags
        )
        start, last = time.monotonic(), ""
        while True:
            run = client.read_flow_run(run.id)
            name = (run.state.name if run.state else None) or "Unknown"
            if name != last and on_state is not None:
                on_state(name, run.state.message if run.state else None)
            last = name
            if run.state is not None and run.state.is_final():
                break
            if time.monotonic() - start > timeout_s:
                name = "TimedOut"
                break
            time.sleep(poll_s)
        return RemoteOutcome(
            deployment=deployment,
            flow_run_id=str(run.id),
            flow_run_name=run.name,
            state=name,
            state_message=run.state.message if run.state else None,
            summary=read_summary(client, flow_run_id=run.id),
            ui_url=flow_run_url(str(run.id)),
            waited_s=time.monotonic() - start,
        )
