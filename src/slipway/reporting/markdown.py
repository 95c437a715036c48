"""Pure renderers: stage results in, Markdown or table rows out."""

from __future__ import annotations

from slipway.gate.quality import GateDecision
from slipway.optimize.parity import ParityReport
from slipway.optimize.select import Selection
from slipway.registry.base import VersionInfo
from slipway.release.result import ReleaseResult
from slipway.reporting.cells import shorten
from slipway.validation.base import ValidationReport


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def validation_markdown(report: ValidationReport) -> str:
    """Summary of a validation: verdict, counts, every failure, link to Data Docs."""
    verdict = "passed" if report.success else "FAILED"
    lines = [
        f"# Data validation {verdict}",
        "",
        f"* suite: `{report.suite_name}` v{report.suite_version} (sha256 `{report.suite_hash[:12]}`)",
        f"* rows: {report.rows}; expectations evaluated: {report.evaluated}; failed: {len(report.failures)}",
        f"* backend: {report.backend}",
    ]
    if report.data_docs:  # a file on the worker: the `data-docs` artifact links to its copy in MLflow
        where = report.data_docs.removeprefix("file://")
        lines.append(
            f"* Data Docs: `{where}` on the worker (artifact `data-docs` links to the copy in MLflow)"
        )
    if report.failures:
        lines += ["", "| expectation | column | unexpected | observed |", "|---|---|---|---|"]
        lines += [
            f"| {f.type} | {_cell(f.column or '(table)')} | {f.unexpected_count or ''} | {_cell(f.observed)} |"
            for f in report.failures
        ]
    return "\n".join(lines)


def gate_rows(decision: GateDecision) -> list[dict[str, object]]:
    """One table row per gate check."""
    return [
        {
            "metric": c.metric,
            "check": c.kind,
            "challenger": round(c.value, 6),
            "limit": round(c.limit, 6),
            "champion": None if c.champion is None else round(c.champion, 6),
            "passed": c.passed,
        }
        for c in decision.checks
    ]


def gate_markdown(decision: GateDecision) -> str:
    """The gate's verdict and every reason line."""
    verdict = "passed" if decision.passed else "REJECTED"
    lines = [f"# Quality gate {verdict}", ""]
    lines += [f"* {_cell(r)}" for r in decision.reasons]
    return "\n".join(lines)


def registration_markdown(version: VersionInfo, *, tracking_uri: str) -> str:
    """The registered version, its aliases and lineage tags."""
    lines = [
        f"# Registered `{version.name}` version {version.version}",
        "",
        f"* aliases: {', '.join(version.aliases) or '(none)'}",
        f"* MLflow run: `{version.run_id}` on `{tracking_uri}`",
        "",
        "| tag | value |",
        "|---|---|",
    ]
    lines += [f"| {k} | `{_cell(v)}` |" for k, v in sorted(version.tags.items())]
    return "\n".join(lines)


def decision_markdown(result: ReleaseResult) -> str:
    """The release's final decision, with stage timings and cache hits."""
    lines = [
        f"# Release {result.decision} at stage `{result.stage}`",
        "",
        f"**Why:** {_cell(result.why())}",
        "",
        f"* model version: {result.model_version or '(none)'}",
        f"* champion compared: {result.champion_version or '(none)'}",
        f"* cached stages: {', '.join(result.cached) or '(none)'}",
        "",
        "## Reasons",
        *[f"* {_cell(r)}" for r in result.reasons],
        "",
        "## Stage timings (s)",
        *[f"* {k}: {v:.2f}" for k, v in result.timings_s.items()],
    ]
    return "\n".join(lines)


def optimization_rows(selection: Selection) -> list[dict[str, object]]:
    """One table row per candidate (and the native model's reference row), the deciding columns first (candidate, shipped,
    verdict, vs_fp32, the quality metric and its loss); the timings after; a cut verdict is whole in `verdict_full` (last)."""
    rows: list[dict[str, object]] = []
    for r in selection.rows:
        verdict = shorten(r.verdict, 60)
        row: dict[str, object] = {
            "candidate": r.name,
            "shipped": r.name == selection.shipped,
            "verdict": verdict,
            "vs_fp32": None if r.speedup_vs_fp32 is None else f"{r.speedup_vs_fp32:+.1%}",
            selection.quality_metric: None if r.quality is None else round(r.quality, 4),
            "quality_loss": r.quality_loss,
        }
        for batch in sorted(r.p50_ms):
            row[f"p50_b{batch}_ms"] = round(r.p50_ms[batch], 4)
            row[f"p99_b{batch}_ms"] = round(r.p99_ms[batch], 4)
        row |= {
            "size_kb": None if r.size_bytes is None else round(r.size_bytes / 1024, 1),
            "load_ms": r.load_ms,
            "status": r.status,
            "verdict_full": r.verdict if verdict != r.verdict else "",
        }
        rows.append(row)
    return rows


def parity_markdown(parity: ParityReport, *, export_sha256: str, opset: int) -> str:
    """The parity gate's verdict with every number."""
    verdict = "passed" if parity.passed else "FAILED"
    return "\n".join(
        [
            f"# ONNX parity {verdict}",
            "",
            f"* exported graph: opset {opset}, sha256 `{export_sha256[:16]}`",
            f"* {_cell(parity.summary())}",
        ]
    )
