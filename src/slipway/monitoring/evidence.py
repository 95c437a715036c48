"""A monitor report where people look: on the champion's MLflow run (HTML, plot, summary), as Prefect
artifacts (a table per column, a link to the HTML, the drift-over-time plot), and the drift episode on
the champion's version tags."""

from __future__ import annotations

from dataclasses import dataclass

from slipway.monitoring.episode import EpisodeStep, episode_step
from slipway.monitoring.run import MonitorResult
from slipway.names import Tag
from slipway.registry.base import ModelRegistry
from slipway.release.outcome import Artifact, link, markdown, table

RUN_FOLDER = "slipway/monitor/reports"


@dataclass(frozen=True)
class Recorded:
    """Where a report's files landed on the champion's run (None without an MLflow UI to link to)."""

    html: str | None
    plot: str | None


def record_report(registry: ModelRegistry, result: MonitorResult) -> Recorded:
    """Blocking (registry writes); the report's files onto the champion's run, under `RUN_FOLDER/<id>/`."""
    folder = f"{RUN_FOLDER}/{result.report_id}"
    paths = result.paths
    documents: dict[str, object] = {f"{folder}/summary.json": result.summary_json()}
    for name, path in (("report.html", paths.html), ("drift.png", paths.plot)):
        if path.is_file():
            documents[f"{folder}/{name}"] = path.read_bytes()
    version = registry.annotate(
        model_name=result.model_name,
        version=result.champion_version,
        tags={Tag.MONITOR_LAST_REPORT: f"{result.report_id} {result.verdict.status}"},
        documents=documents,
    )
    links = registry.run_links(run_id=version.run_id) if version.run_id else None
    if links is None:
        return Recorded(html=None, plot=None)
    return Recorded(
        html=links.artifact_file(f"{folder}/report.html") if paths.html.is_file() else None,
        plot=links.artifact_file(f"{folder}/drift.png") if paths.plot.is_file() else None,
    )


def advance_episode(registry: ModelRegistry, result: MonitorResult) -> EpisodeStep:
    """Blocking (one read, at most one tag write); the episode rules over the champion's tags, written back."""
    version = registry.get_version(model_name=result.model_name, version=result.champion_version)
    step = episode_step(alarm=result.verdict.alarm, tags=version.tags, report_id=result.report_id)
    if step.tags:
        registry.annotate(
            model_name=result.model_name, version=result.champion_version, tags=step.tags, documents={}
        )
    return step


def monitor_artifacts(result: MonitorResult, recorded: Recorded) -> tuple[Artifact, ...]:
    """Pure; the Prefect artifacts of one report: every column's test, the HTML link, the plot over time."""
    columns = result.verdict.evidence.get("columns", [])
    rows = [
        {
            "column": c["column"],
            "statistic": c["statistic"],
            "p_value": "n/a" if c["p_value"] is None else f"{c['p_value']:.3g}",
            "threshold": f"{c['threshold']:.3g}",
            "drifted": "DRIFT" if c["drifted"] else "ok",
            "reference_rows": c["reference_rows"],
            "live_rows": c["current_rows"],
        }
        for c in columns
    ]
    head = f"{result.model_name} v{result.champion_version}: {result.verdict.status} ({result.window.rows} live rows)"
    out = [table("monitor-columns", rows, head)] if rows else []
    html = recorded.html or (f"file://{result.paths.html}" if result.paths.html.is_file() else None)
    if html:
        out.append(link("monitor-report", html, f"Evidently report {result.report_id}"))
    plot = (
        f"![drift over time]({recorded.plot})"
        if recorded.plot
        else f"Plot: `{result.paths.plot}` on the worker."
    )
    reasons = "\n".join(f"* {r}" for r in result.verdict.reasons)
    out.append(
        markdown("monitor-summary", f"# Monitor {result.report_id}\n\n{head}\n\n{reasons}\n\n{plot}\n", head)
    )
    return tuple(out)
