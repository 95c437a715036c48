"""The release's report: `<reports>/release-<UTC time>.json` for every release (errors included), and
the decision artifacts the Prefect UI and `slipway remote release` read."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from slipway.release.evidence import is_url, links_markdown
from slipway.release.outcome import Artifact, link, markdown, table
from slipway.release.result import ReleaseResult
from slipway.reporting.markdown import decision_markdown


def write_report(result: ReleaseResult, *, reports_dir: Path) -> Path:
    """Blocking; writes the result as JSON under `reports_dir` (created) and returns the file."""
    reports_dir.mkdir(parents=True, exist_ok=True)
    path = reports_dir / f"release-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%fZ')}.json"
    path.write_text(json.dumps(result.as_json_dict(), indent=2, sort_keys=True) + "\n")
    return path


def decision_artifacts(result: ReleaseResult) -> tuple[Artifact, ...]:
    """Pure; `release-decision` (markdown), `release-summary` (the table CI reads back through the API),
    `release-evidence` (every report, as links a teammate can open) and `data-docs`.

    Their descriptions (what the run's Artifacts tab shows on each card) carry the decision and the
    main links, so the tab alone says what happened and where the evidence is.
    """
    headline = f"**{result.decision}**" + (f" v{result.model_version}" if result.model_version else "")
    top = _top_links(result.links)
    found: list[Artifact] = [
        markdown("release-decision", decision_markdown(result), f"{headline} at `{result.stage}`{top}"),
        table(
            "release-summary",
            result.summary_rows(),
            f"{headline}: decision, version, why, image and commit (read back by `slipway remote release`; "
            "a value cut with … is whole in the `full` column)",
        ),
        markdown("release-evidence", evidence_markdown(result), f"Evidence of this release{top}"),
    ]
    docs = result.links.get("Data Docs")
    if docs and is_url(docs):
        found.append(link("data-docs", docs, "Great Expectations Data Docs (offline page, in MLflow)"))
    elif docs:
        found.append(markdown("data-docs", f"# Data Docs\n\n`{docs}` on the worker", "Data Docs (local)"))
    return tuple(found)


def evidence_markdown(result: ReleaseResult) -> str:
    """Pure; every link of the release (images inline), or why there are none to open."""
    body = links_markdown(result.links)
    if not any(is_url(v) for k, v in result.links.items() if k != "Prefect run"):
        body += (
            "\n\nNo MLflow server to link to (SQLite store): the reports are files on the worker. "
            "Point SLIPWAY_MLFLOW_TRACKING_URI at an MLflow server (and SLIPWAY_MLFLOW_UI_URL at the "
            "address people open) to get links that work from any machine."
        )
    return f"# Evidence: {result.decision}\n\n{body.strip()}\n"


def _top_links(links: dict[str, str]) -> str:
    wanted = ("MLflow version", "Data Docs", "canary plot")
    shown = [f"[{k}]({links[k]})" for k in wanted if k in links and is_url(links[k])]
    return (" · " + " · ".join(shown)) if shown else ""
