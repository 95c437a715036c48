"""What a canary leaves behind: table rows (Prefect table artifacts), markdown, a PNG timeline, MLflow tags.

Pure renderers over `CanaryOutcome`/`Decision`; matplotlib is imported inside `plot_png` and draws
on a bare `Figure` (no pyplot, no global backend switch), so this module costs nothing to import.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slipway.canary.checks import CheckResult
from slipway.canary.controller import CanaryOutcome, TimelinePoint
from slipway.canary.decision import Decision

TAG_LIMIT = 5000  # MLflow tag values are capped (5000 chars on older servers)


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, fmt)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def decision_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """Pure; one row per decision: window, time, weight, outcome, n per arm, failed checks, reason."""
    rows = []
    for d in decisions:
        w = d.window
        rows.append(
            {
                "window": None if w is None else w.index,
                "elapsed_s": round(d.elapsed_s, 1),
                "phase": d.phase.value,
                "weight": d.weight,
                "outcome": d.outcome.value,
                "next_weight": d.next_weight,
                "n_canary": None if w is None else w.n_canary,
                "n_stable": None if w is None else w.n_stable,
                "pairs": None if w is None else w.pairs,
                "failed": ", ".join(c.name for c in d.checks if c.failed),
                "reason": d.reason,
                "canary_version": d.state.canary_version,
                "stable_version": d.state.stable_version,
            }
        )
    return rows


def check_rows(decision: Decision) -> list[dict[str, Any]]:
    """Pure; one row per check of a decision: status, statistic, p-value, effect, threshold, n per arm."""
    return [c.to_dict() for c in decision.checks]


def _check_line(c: CheckResult) -> str:
    return (
        f"| {c.name} | {c.status.value} | {c.severity.value} | {_num(c.statistic)} | {_num(c.p_value, '.3g')} "
        f"| {_num(c.effect)} | {c.n_canary} / {c.n_stable} | {_cell(c.threshold)} | {_cell(c.detail)} |"
    )


def render_markdown(outcome: CanaryOutcome) -> str:
    """Pure; the result, the deciding decision's checks, and every decision as a table."""
    lines = [
        f"# Canary {outcome.canary_version} vs stable {outcome.stable_version}: **{outcome.result}**",
        "",
        f"{outcome.reason}",
        "",
        f"Peak weight {outcome.peak_weight}%, {outcome.intervals:.1f} intervals ({outcome.elapsed_s:.0f} s), "
        f"{len(outcome.decisions)} decisions.",
        "",
    ]
    last = outcome.last
    if last is not None and last.checks:
        lines += [
            "## Checks at the deciding window",
            "",
            "| check | status | kind | statistic | p | effect | n canary / stable | threshold | detail |",
            "|---|---|---|---|---|---|---|---|---|",
            *map(_check_line, last.checks),
            "",
        ]
    lines += [
        "## Decisions",
        "",
        "| window | t (s) | phase | weight | outcome | n canary / stable | failed | reason |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in decision_rows(outcome.decisions):
        lines.append(
            f"| {row['window'] if row['window'] is not None else '—'} | {row['elapsed_s']:.0f} | {row['phase']} "
            f"| {row['weight']} | {row['outcome']} | {row['n_canary']} / {row['n_stable']} "
            f"| {row['failed'] or '—'} | {_cell(row['reason'])} |"
        )
    return "\n".join(lines) + "\n"


def version_tags(outcome: CanaryOutcome, *, prefix: str = "canary.") -> dict[str, str]:
    """Pure; MLflow tags for the canary's model version: result, reason, numbers, the deciding checks (JSON)."""
    last = outcome.last
    checks = [] if last is None else [c.to_dict() for c in last.checks]
    blob = json.dumps(checks, separators=(",", ":"), allow_nan=False)
    if len(blob) > TAG_LIMIT:
        blob = json.dumps([c for c in checks if c["status"] == "failed"], separators=(",", ":"))[:TAG_LIMIT]
    return {
        f"{prefix}result": outcome.result,
        f"{prefix}reason": outcome.reason[:TAG_LIMIT],
        f"{prefix}peak_weight": str(outcome.peak_weight),
        f"{prefix}intervals": f"{outcome.intervals:.2f}",
        f"{prefix}decisions": str(len(outcome.decisions)),
        f"{prefix}stable_version": outcome.stable_version,
        f"{prefix}checks": blob,
    }


def _series(points: Sequence[TimelinePoint], attr: str) -> list[float]:
    return [math.nan if getattr(p, attr) is None else float(getattr(p, attr)) for p in points]


def plot_png(points: Sequence[TimelinePoint], *, title: str = "", path: Path | None = None) -> bytes:
    """Pure (writes `path` if given); PNG of weight, error rate, p99 latency and shift per window over time."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 8), dpi=100, layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    t = [p.elapsed_s for p in points]
    axes[0].step(t, [p.weight for p in points], where="pre", color="tab:purple")
    axes[0].set_ylabel("canary weight %")
    axes[0].set_ylim(-5, 105)
    for ax, attr, label in (
        (axes[1], "error_rate", "error rate"),
        (axes[2], "p99_ms", "p99 latency ms"),
    ):
        ax.plot(t, _series(points, f"canary_{attr}"), "o-", label="canary", color="tab:orange")
        ax.plot(t, _series(points, f"stable_{attr}"), "s-", label="stable", color="tab:blue")
        ax.set_ylabel(label)
        ax.legend(loc="upper left", fontsize="small")
    axes[3].plot(t, _series(points, "shift"), "d-", color="tab:red")
    axes[3].set_ylabel("shift (KS D / paired)")
    axes[3].set_xlabel("seconds since canary start")
    for p in points:
        if p.outcome in ("rollback", "error"):
            for ax in axes:
                ax.axvline(p.elapsed_s, color="red", linestyle="--", linewidth=1)
        if p.stale:
            axes[0].axvspan(p.elapsed_s - 0.5, p.elapsed_s + 0.5, color="grey", alpha=0.3)
    if title:
        fig.suptitle(title)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    data = buf.getvalue()
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return data
