"""The quality gate as a pure function: metrics and limits in, a decision with its reasons out."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from slipway.config import QualityGateConfig
from slipway.evaluation.metrics import METRICS
from slipway.names import Task


class MetricCheck(BaseModel):
    """One check of one metric, with every number that went into it."""

    metric: str = Field(description="Metric name.")
    kind: str = Field(
        description="'threshold' (absolute floor or ceiling) or 'vs_champion' (allowed regression)."
    )
    value: float = Field(description="The challenger's value on the holdout.")
    limit: float = Field(
        description="The value the challenger had to reach (a floor) or stay within (a ceiling)."
    )
    higher_is_better: bool = Field(default=True, description="True: the limit is a floor; False: a ceiling.")
    champion: float | None = Field(default=None, description="The champion's value (vs_champion only).")
    passed: bool = Field(description="Whether the challenger reached the limit.")

    def text(self) -> str:
        """One line a person reads in the UI and the CLI; a comparison is written only as it holds."""
        ok = self.passed
        relation = {(True, True): ">=", (True, False): "<", (False, True): "<=", (False, False): ">"}[
            (self.higher_is_better, ok)
        ]
        need = "" if ok else (" required" if self.higher_is_better else " allowed")
        if self.kind == "threshold":
            bound = "floor" if self.higher_is_better else "ceiling"
            return f"{'ok' if ok else 'FAIL'}: {self.metric} {self.value:.4f} {relation} {bound} {self.limit:.4f}"
        champion = math.nan if self.champion is None else self.champion
        sign = "-" if self.higher_is_better else "+"
        return (
            f"{'ok' if ok else 'FAIL'}: {self.metric} {self.value:.4f} {relation} {self.limit:.4f}{need} "
            f"(champion {champion:.4f} {sign} margin {abs(champion - self.limit):.4f})"
        )


class GateDecision(BaseModel):
    """The gate's verdict; `reasons` explains it line by line."""

    passed: bool = Field(description="True when every check passed.")
    first_release: bool = Field(description="True when there was no champion to compare with.")
    champion_version: str | None = Field(default=None, description="Champion version compared against.")
    checks: list[MetricCheck] = Field(description="Every check made.")
    reasons: list[str] = Field(description="Human lines: each check, plus how the decision was reached.")


def _passes(value: float, limit: float, *, higher_is_better: bool) -> bool:
    if math.isnan(value):
        return False
    return value >= limit - 1e-12 if higher_is_better else value <= limit + 1e-12


def decide(
    *,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
    cfg: QualityGateConfig,
    task: Task = "binary",
) -> GateDecision:
    """Pass only if every floor/ceiling holds and, when a champion exists, no metric regresses past its margin.

    A metric's direction comes from the task (rmse and log_loss: lower is better). A metric missing from
    the challenger's results fails closed (NaN never passes).
    """
    directions = {name: m.higher_is_better for name, m in METRICS[task].items()}
    checks = []
    for name, limit in sorted(cfg.thresholds.items()):
        up = directions.get(name, True)
        value = challenger.get(name, math.nan)
        checks.append(
            MetricCheck(
                metric=name,
                kind="threshold",
                value=value,
                limit=limit,
                higher_is_better=up,
                passed=_passes(value, limit, higher_is_better=up),
            )
        )
    if champion is not None:
        for name, margin in sorted(cfg.max_regression.items()):
            up = directions.get(name, True)
            champ = champion.get(name, math.nan)
            value = challenger.get(name, math.nan)
            limit = champ - margin if up else champ + margin
            checks.append(
                MetricCheck(
                    metric=name,
                    kind="vs_champion",
                    value=value,
                    limit=limit,
                    higher_is_better=up,
                    champion=champ,
                    passed=_passes(value, limit, higher_is_better=up),
                )
            )
    passed = all(c.passed for c in checks)
    reasons = [c.text() for c in checks]
    if champion is None:
        reasons.insert(0, "first release: no champion alias exists, absolute thresholds only")
    else:
        reasons.insert(0, f"compared with champion version {champion_version} on the same holdout")
    failed = [c.metric for c in checks if not c.passed]
    reasons.append(
        "gate passed" if passed else f"gate rejected: {', '.join(sorted(set(failed)))} outside its limit"
    )
    return GateDecision(
        passed=passed,
        first_release=champion is None,
        champion_version=champion_version,
        checks=checks,
        reasons=reasons,
    )
