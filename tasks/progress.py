"""Live canary progress in the Prefect UI: a progress artifact (the weight) and a table of every window so
far, both updated in place each window, and one log line per window.

Called from inside the canary task, once per decision. Publishing never changes the canary: an API
error is logged once per kind and the canary goes on (an exception here would roll it back).
"""

from __future__ import annotations

import json
from typing import Any, cast
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from slipway.canary.decision import Decision
from slipway.canary.report import decision_rows, progress_line
from slipway.release.outcome import StageOutcome

PROGRESS_KEY = "canary-progress"
LIVE_KEY = "canary-live"


class CanaryProgress:
    """Publishes one canary's progress; call `start` once, then the instance with each decision."""

    def __init__(self) -> None:
        self._progress_id: UUID | None = None
        self._table_id: UUID | None = None
        self._decisions: list[Decision] = []
        self._warned: set[str] = set()

    def start(self, text: str) -> None:
        """Blocking (two API calls); creates both artifacts at weight 0 with `text` (what is starting)."""
        get_run_logger().info(text)
        try:
            self._progress_id = cast(
                UUID, create_progress_artifact(progress=0.0, key=PROGRESS_KEY, description=f"Canary: {text}")
            )
            self._table_id = cast(
                UUID,
                create_table_artifact(
                    key=LIVE_KEY,
                    table=[],
                    description=f"Canary windows so far (updated every window): {text}",
                ),
            )
        except Exception as exc:
            self._warn("create", exc)

    def __call__(self, decision: Decision) -> None:
        """Blocking (two API calls); logs the window's line and updates both artifacts; never raises."""
        line = progress_line(decision)
        get_run_logger().info(line)
        self._decisions.append(decision)
        weight = 100 if decision.final else (0 if decision.outcome.terminal else decision.weight)
        try:
            if self._progress_id is not None:
                update_progress_artifact(self._progress_id, progress=float(weight), description=line)
            if self._table_id is not None:
                self._update_table(decision_rows(self._decisions), line)
        except Exception as exc:
            self._warn("update", exc)

    def finish(self, outcome: StageOutcome[Any]) -> None:
        """Blocking (one API call); the progress artifact's last word: 100% promoted, else 0% and why."""
        if self._progress_id is None:
            return
        promoted = outcome.verdict == "passed"
        line = outcome.reasons[0] if outcome.reasons else f"canary {outcome.verdict}"
        get_run_logger().info(line)
        try:
            update_progress_artifact(self._progress_id, progress=100.0 if promoted else 0.0, description=line)
        except Exception as exc:
            self._warn("finish", exc)

    def _update_table(self, rows: list[dict[str, Any]], line: str) -> None:
        from prefect.client.schemas.actions import ArtifactUpdate

        assert self._table_id is not None
        with get_client(sync_client=True) as client:
            client.update_artifact(
                self._table_id,
                ArtifactUpdate(data=json.dumps(rows), description=f"Canary windows so far: {line}"),
            )

    def _warn(self, what: str, exc: Exception) -> None:
        if what not in self._warned:
            self._warned.add(what)
            get_run_logger().warning(
                "canary progress artifacts: %s failed (%s); the canary goes on", what, exc
            )
