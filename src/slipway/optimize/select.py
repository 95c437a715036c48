"""Pick the candidate to ship: fastest within the quality budget; quantized only if measurably faster.

Pure: measurements and limits in, a decision table out. INT8 is often not faster on CPUs without
VNNI, so a quantized candidate must beat FP32 by `min_quantized_speedup` on the median of the
per-round p50 ratios AND win most interleaved rounds; it is never assumed to be faster.
"""

from __future__ import annotations

import statistics

from pydantic import BaseModel, Field

from slipway.config import OptimizeConfig
from slipway.names import Task
from slipway.optimize.candidates import Candidate
from slipway.optimize.measure import Measurement

BASELINE = "fp32"
MIN_ROUND_WIN_SHARE = 0.75


class CandidateRow(BaseModel):
    """One line of the decision table."""

    name: str
    status: str = Field(description="built | unsupported | failed | reference (not shippable)")
    eligible: bool
    verdict: str = Field(description="Why it ships, is excluded, or was only measured.")
    quality: float | None = Field(default=None, description="The task's primary metric on the holdout.")
    quality_loss: float | None = Field(
        default=None,
        description="Classification: accuracy points lost vs fp32; regression: % rmse increase vs fp32.",
    )
    size_bytes: int | None = None
    load_ms: float | None = None
    p50_ms: dict[int, float] = Field(default_factory=dict)
    p99_ms: dict[int, float] = Field(default_factory=dict)
    speedup_vs_fp32: float | None = Field(
        default=None, description="Median per-round fp32/candidate p50 - 1."
    )
    rounds_won: str | None = None
    sha256: str | None = None


class Selection(BaseModel):
    """The shipped candidate, the rule that chose it and the whole table."""

    shipped: str
    rank_batch: int
    quality_metric: str = Field(default="accuracy", description="The primary metric the budget is on.")
    reasons: list[str]
    rows: list[CandidateRow]

    def row(self, name: str) -> CandidateRow:
        """The table row of one candidate; KeyError if absent."""
        for r in self.rows:
            if r.name == name:
                return r
        raise KeyError(name)


def _speedup(base: Measurement, cand: Measurement, batch: int) -> tuple[float, int, int]:
    ratios = [b / c for b, c in zip(base.round_p50[batch], cand.round_p50[batch], strict=True) if c > 0]
    wins = sum(1 for r in ratios if r > 1.0)
    return (statistics.median(ratios) - 1.0 if ratios else 0.0), wins, len(ratios)


def select(
    candidates: list[Candidate],
    measurements: dict[str, Measurement],
    *,
    cfg: OptimizeConfig,
    references: tuple[str, ...] = (),
    task: Task = "binary",
) -> Selection:
    """Pure; the decision table; ValueError if the FP32 baseline was not measured.

    The quality budget is on the task's primary metric: accuracy points for classification
    (`max_accuracy_drop_points`), percent rmse increase for regression (`max_rmse_increase_percent`).
    """
    if BASELINE not in measurements:
        raise ValueError("the fp32 baseline must be built and measured before selection")
    base = measurements[BASELINE]
    regression = task == "regression"
    budget = cfg.max_rmse_increase_percent if regression else cfg.max_accuracy_drop_points
    unit = "% rmse increase" if regression else " accuracy points"

    def loss(m: Measurement) -> float:
        if regression:
            return round((m.quality - base.quality) / max(abs(base.quality), 1e-12) * 100.0, 4)
        return round((base.quality - m.quality) * 100.0, 4)

    batch = cfg.rank_batch if cfg.rank_batch in base.samples else min(base.samples)
    rows: list[CandidateRow] = []
    eligible: list[str] = []
    for cand in candidates:
        m = measurements.get(cand.name)
        if cand.status != "built" or m is None:
            rows.append(
                CandidateRow(
                    name=cand.name, status=cand.status, eligible=False, verdict=cand.reason or cand.status
                )
            )
            continue
        drop = loss(m)
        speedup, wins, n = _speedup(base, m, batch)
        row = CandidateRow(
            name=cand.name,
            status="built",
            eligible=False,
            verdict="",
            quality=m.quality,
            quality_loss=drop,
            size_bytes=m.size_bytes,
            load_ms=round(m.load_ms, 3),
            p50_ms={b: round(m.p50(b), 5) for b in m.samples},
            p99_ms={b: round(m.p99(b), 5) for b in m.samples},
            speedup_vs_fp32=round(speedup, 4),
            rounds_won=f"{wins}/{n}",
            sha256=cand.sha256,
        )
        if cand.name == BASELINE:
            row.eligible, row.verdict = True, "baseline: always eligible"
            row.speedup_vs_fp32, row.rounds_won = 0.0, None
        elif drop > budget:
            row.verdict = f"excluded: quality loss {drop:.2f}{unit} > budget {budget:g}"
        elif speedup < cfg.min_quantized_speedup:
            row.verdict = (
                f"excluded: {speedup:+.1%} vs fp32 at batch {batch} is below the required "
                f"{cfg.min_quantized_speedup:.0%} speed-up"
            )
        elif wins < MIN_ROUND_WIN_SHARE * n:
            row.verdict = f"excluded: faster in only {wins}/{n} interleaved rounds (noise, not a speed-up)"
        else:
            row.eligible = True
            row.verdict = f"eligible: {speedup:+.1%} vs fp32, quality loss {drop:.2f}{unit}"
        if row.eligible:
            eligible.append(cand.name)
        rows.append(row)
    for name in references:
        m = measurements[name]
        speedup, wins, n = _speedup(base, m, batch)
        rows.append(
            CandidateRow(
                name=name,
                status="reference",
                eligible=False,
                verdict="reference only (not an ONNX artifact)",
                quality=m.quality,
                quality_loss=loss(m),
                size_bytes=m.size_bytes,
                load_ms=round(m.load_ms, 3),
                p50_ms={b: round(m.p50(b), 5) for b in m.samples},
                p99_ms={b: round(m.p99(b), 5) for b in m.samples},
                speedup_vs_fp32=round(speedup, 4),
                rounds_won=f"{wins}/{n}",
            )
        )
    winner = min(eligible, key=lambda name: measurements[name].p50(batch))
    reasons = [
        f"shipped {winner}: fastest eligible candidate at batch {batch} "
        f"(p50 {measurements[winner].p50(batch):.4f} ms vs fp32 {base.p50(batch):.4f} ms)",
        f"rules: quality loss <= {budget:g}{unit} vs fp32; quantized only if >= "
        f"{cfg.min_quantized_speedup:.0%} faster and faster in >= {MIN_ROUND_WIN_SHARE:.0%} of rounds",
    ]
    for row in rows:
        if row.status != "reference" and not row.eligible:
            reasons.append(f"{row.name}: {row.verdict}")
    return Selection(
        shipped=winner,
        rank_batch=batch,
        quality_metric="rmse" if regression else "accuracy",
        reasons=reasons,
        rows=rows,
    )
