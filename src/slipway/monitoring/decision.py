"""The monitor's verdict as a pure function: a window's drift tests and live quality in, a verdict with evidence out.

Rules, in order:
1. A window with fewer than `min_rows` rows is not judged: error (exit 2), never "no drift".
2. A column whose test gave no p-value is not judged: error naming it (an untested column is no evidence).
3. Labels were given but none matched a row of the window: error (exit 2) naming how many were given.
4. A column (a feature or the predictions) drifted when its p-value < alpha / (features + 1): drift.
5. With labels, live quality below a quality-gate floor (or above a ceiling) is a breach.
6. Exit 1 when 4 or 5 holds (every drifted column and broken floor named), else 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from slipway.gate.quality import GateDecision
from slipway.monitoring.drift import ColumnDrift

Status = Literal["ok", "drift", "breach", "drift_and_breach", "error"]
EXIT: dict[Status, int] = {"ok": 0, "drift": 1, "breach": 1, "drift_and_breach": 1, "error": 2}


@dataclass(frozen=True)
class MonitorVerdict:
    """What a window shows, the rule that decided it, and the numbers behind it."""

    status: Status
    rule: int
    reasons: tuple[str, ...]
    drifted: tuple[ColumnDrift, ...] = ()
    breached: tuple[str, ...] = ()  # quality checks that failed, as the gate writes them
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """Pure; 0 no drift and no breach, 1 drift or breach, 2 not judged."""
        return EXIT[self.status]

    @property
    def alarm(self) -> bool:
        """Pure; drift or a quality breach (what triggers a retrain)."""
        return self.exit_code == 1


def _drift_line(c: ColumnDrift) -> str:
    what = "predictions" if c.is_prediction else f"column {c.column!r}"
    return (
        f"drift: {what} {c.statistic} p={c.p_value:.3g} < {c.threshold:.3g} "
        f"(reference {c.reference_rows} rows, live {c.current_rows} rows)"
    )


def monitor_verdict(
    *,
    rows: int,
    min_rows: int,
    columns: tuple[ColumnDrift, ...],
    quality: GateDecision | None,
    labels_given: int = 0,
    labels_matched: int = 0,
) -> MonitorVerdict:
    """Pure; the rules of the module docstring, in order."""
    evidence: dict[str, Any] = {
        "rows": rows,
        "min_rows": min_rows,
        "columns": [c.as_dict() for c in columns],
        "labels_given": labels_given,
        "labels_matched": labels_matched,
        "quality": quality.model_dump(mode="json") if quality is not None else None,
    }
    if rows < min_rows:
        why = f"window has {rows} rows, fewer than monitor.min_rows={min_rows}: not judged"
        return MonitorVerdict(status="error", rule=1, reasons=(why,), evidence=evidence)
    untested = [c.column for c in columns if not c.tested]
    if untested:
        why = f"no test result for column(s) {untested}: not judged"
        return MonitorVerdict(status="error", rule=2, reasons=(why,), evidence=evidence)
    if labels_given and not labels_matched:
        why = f"{labels_given} labels given, none matched a row of the window (by request id): not judged"
        return MonitorVerdict(status="error", rule=3, reasons=(why,), evidence=evidence)
    drifted = tuple(c for c in columns if c.drifted)
    breached = tuple(c.text() for c in quality.checks if not c.passed) if quality is not None else ()
    reasons = [_drift_line(c) for c in drifted] + [f"quality breach: {b}" for b in breached]
    if drifted and breached:
        status: Status = "drift_and_breach"
    elif drifted:
        status = "drift"
    elif breached:
        status = "breach"
    else:
        status = "ok"
        tested = len(columns)
        reasons.append(
            f"no drift in {tested} tested columns" + (", quality within floors" if quality else "")
        )
    rule = 4 if drifted else (5 if breached else 6)
    return MonitorVerdict(
        status=status,
        rule=rule,
        reasons=tuple(reasons),
        drifted=drifted,
        breached=breached,
        evidence=evidence,
    )
