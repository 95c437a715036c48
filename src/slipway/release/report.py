"""The release's report: `<reports>/release-<UTC time>.json` for every release (errors included), and
the decision artifacts the Prefect UI and `slipway remote release` read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from slipway.release.outcome import Artifact, markdown, table
from slipway.release.result import ReleaseResult
from slipway.reporting.markdown import decision_markdown


def write_report(result: ReleaseResult, *, reports_dir: Path) -> Path:
    """Blocking; writes the result as JSON under `reports_dir` (created) and returns the file."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"release-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    path.write_text(json.dumps(result.as_json_dict(), indent=2, sort_keys=True) + "\n")
    return path


def decision_artifacts(result: ReleaseResult) -> tuple[Artifact, ...]:
    """Pure; `release-decision` (markdown) and `release-summary` (the table CI reads back through the API)."""
    return (
        markdown("release-decision", decision_markdown(result), "Release"),
        table(
            "release-summary",
            result.summary_rows(),
            "Release decision, version, image digest and commit (read back by `slipway remote release`)",
        ),
    )
