"""What a canary leaves behind: table rows (Prefect table artifacts), markdown, a PNG timeline, MLflow tags.

Pure renderers over `CanaryOutcome`/`Decision`; matplotlib is imported inside `plot_png` and draws
on a bare `Figure` (no pyplot, no global backend switch), so this module costs nothing to import.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from slipway.canary.checks import CheckResult
from slipway.canary.controller import CanaryOutcome, TimelinePoint
from slipway.canary.decision import Decision, WindowSummary
from slipway.reporting.cells import shorten

TAG_LIMIT = 5000  # MLflow tag values are capped (5000 chars on older servers)


def _num(value: float | None, fmt: str = ".4g") -> str:
    return "—" if value is None or not math.isfinite(value) else format(value, fmt)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _check_counts(d: Decision) -> dict[str, int]:
    counts = {"passed": 0, "holding": 0, "failed": 0}
    for c in d.checks:
        key = {"passed": "passed", "failed": "failed"}.get(c.status.value, "holding")
        counts[key] += 1
    return counts


def decision_rows(decisions: Sequence[Decision]) -> list[dict[str, Any]]:
    """Pure; one row per decision, the deciding columns first (window, weight, outcome, why, failed checks,
    n per arm); `reason` is cut to fit the UI's box and `reason_full` (last column) holds it whole."""
    rows = []
    for d in decisions:
        w = d.window
        counts = _check_counts(d)
        short = shorten(d.reason)
        rows.append(
            {
                "window": None if w is None else w.index,
                "weight": d.weight,
                "outcome": d.outcome.value,
                "next_weight": d.next_weight,
                "reason": short,
                "failed": ", ".join(c.name for c in d.checks if c.failed),
                "checks": f"{counts['passed']} passed, {counts['holding']} holding, {counts['failed']} failed",
                "n_canary": None if w is None else w.n_canary,
                "n_stable": None if w is None else w.n_stable,
                "pairs": None if w is None else w.pairs,
                "missing_entities": None if w is None else _missing(w),
                "elapsed_s": round(d.elapsed_s, 1),
                "phase": d.phase.value,
                "canary_version": d.state.canary_version,
                "stable_version": d.state.stable_version,
                "reason_full": d.reason if short != d.reason else "",
            }
        )
    return rows


def _missing(w: WindowSummary) -> str:
    """`canary m/n, stable m/n`: entities missing of those looked up; empty without lookups."""
    if not (w.canary_entities or w.stable_entities):
        return ""
    c = f"{w.canary_missing_entities}/{w.canary_entities}"
    return f"canary {c}, stable {w.stable_missing_entities}/{w.stable_entities}"


def progress_line(d: Decision) -> str:
    """Pure; one line per window, for the log and the progress artifact: weight, n per arm, checks, what next."""
    w = d.window
    counts = _check_counts(d)
    n = "no window" if w is None else f"n canary {w.n_canary} / stable {w.n_stable}"
    if w is not None and w.pairs:
        n += f", {w.pairs} shadow pairs"
    if w is not None and _missing(w):
        n += f", missing entities {_missing(w)}"
    at = f"shadow {d.state.shadow}%" if d.phase.value == "shadow" else f"weight {d.weight}%"
    if d.outcome.terminal:
        then = "rolled back"
    elif d.final:
        then = "promoting to 100%"
    elif d.next_weight != d.weight:
        then = f"next {d.next_weight}%"
    else:
        then = "holding"
    window = "—" if w is None else str(w.index)
    return (
        f"canary window {window} at {d.elapsed_s:.0f} s: {at}; {n}; checks {counts['passed']} passed, "
        f"{counts['holding']} holding, {counts['failed']} failed; {d.outcome.value} ({then}): {d.reason}"
    )


def peak_live_weight(outcome: CanaryOutcome) -> int:
    """Pure; the highest weight the canary was measured at before the decision (promotion's 100% excluded)."""
    return max((d.weight for d in outcome.decisions), default=0)


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
        f"{_weights_line(outcome)}, {outcome.intervals:.1f} intervals ({outcome.elapsed_s:.0f} s), "
        f"{len(outcome.decisions)} decisions.",
        "",
    ]
    last = outcome.last
    if last is not None and last.checks:
        lines += [
            "## Checks at the deciding window",
            "",
            "| check | status | kind | statistic | p | effect | n canary / stable | fails when | detail |",
            "|---|---|---|---|---|---|---|---|---|",
            *map(_check_line, last.checks),
            "",
        ]
    lines += [
        "## Decisions",
        "",
        "| window | weight | outcome | reason | failed | n canary / stable | missing entities | t (s) | phase |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for d, row in zip(outcome.decisions, decision_rows(outcome.decisions), strict=True):
        lines.append(
            f"| {row['window'] if row['window'] is not None else '—'} | {row['weight']} | {row['outcome']} "
            f"| {_cell(d.reason)} | {row['failed'] or '—'} | {row['n_canary']} / {row['n_stable']} "
            f"| {row['missing_entities'] or '—'} | {row['elapsed_s']:.0f} | {row['phase']} |"
        )
    return "\n".join(lines) + "\n"


def _weights_line(outcome: CanaryOutcome) -> str:
    steps = list(dict.fromkeys(d.weight for d in outcome.decisions if d.phase.value == "live"))
    path = " → ".join(f"{w}%" for w in steps) or "shadow only"
    if outcome.result == "promoted":
        return f"Live weights {path}, then promoted to 100%"
    return f"Live weights {path} (peak {peak_live_weight(outcome)}%), then rolled back to 0%"


def version_tags(outcome: CanaryOutcome, *, prefix: str = "canary.") -> dict[str, str]:
    """Pure; short MLflow tags for the canary's model version: result, reason, numbers. The checks (big
    JSON) are files on the version's run (`slipway/canary.json`), not tags."""
    return {
        f"{prefix}result": outcome.result,
        f"{prefix}reason": outcome.reason[:TAG_LIMIT],
        f"{prefix}peak_weight": str(outcome.peak_weight),
        f"{prefix}intervals": f"{outcome.intervals:.2f}",
        f"{prefix}decisions": str(len(outcome.decisions)),
        f"{prefix}stable_version": outcome.stable_version,
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
