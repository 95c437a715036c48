"""The quality gate as a pure function: metrics and limits in, a decision with its reasons out."""

from __future__ import annotations

import math

from pydantic import BaseModel, Field

from slipway.config import QualityGateConfig


class MetricCheck(BaseModel):
    """One check of one metric, with every number that went into it."""

    metric: str = Field(description="Metric name.")
    kind: str = Field(description="'threshold' (absolute floor) or 'vs_champion' (allowed regression).")
    value: float = Field(description="The challenger's value on the holdout.")
    limit: float = Field(description="The value the challenger had to reach.")
    champion: float | None = Field(default=None, description="The champion's value (vs_champion only).")
    passed: bool = Field(description="Whether the challenger reached the limit.")

    def text(self) -> str:
        """One line a person reads in the UI and the CLI."""
        verdict = "ok" if self.passed else "FAIL"
        if self.kind == "threshold":
            return f"{verdict}: {self.metric} {self.value:.4f} >= floor {self.limit:.4f}"
        champion = math.nan if self.champion is None else self.champion
        return (
            f"{verdict}: {self.metric} {self.value:.4f} >= champion {champion:.4f} "
            f"- margin {champion - self.limit:.4f} = {self.limit:.4f}"
        )


class GateDecision(BaseModel):
    """The gate's verdict; `reasons` explains it line by line."""

    passed: bool = Field(description="True when every check passed.")
    first_release: bool = Field(description="True when there was no champion to compare with.")
    champion_version: str | None = Field(default=None, description="Champion version compared against.")
    checks: list[MetricCheck] = Field(description="Every check made.")
    reasons: list[str] = Field(description="Human lines: each check, plus how the decision was reached.")


def _passes(value: float, limit: float) -> bool:
    return not math.isnan(value) and value >= limit - 1e-12


def decide(
    *,
    challenger: dict[str, float],
    champion: dict[str, float] | None,
    champion_version: str | None,
    cfg: QualityGateConfig,
) -> GateDecision:
    """Pass only if every floor holds and, when a champion exists, no metric regresses past its margin.

    A metric missing from the challenger's results fails closed (NaN never passes).
    """
    checks = [
        MetricCheck(
            metric=name,
            kind="threshold",
            value=challenger.get(name, math.nan),
            limit=floor,
            passed=_passes(challenger.get(name, math.nan), floor),
        )
        for name, floor in sorted(cfg.thresholds.items())
    ]
    if champion is not None:
        for name, margin in sorted(cfg.max_regression.items()):
            champ = champion.get(name, math.nan)
            value = challenger.get(name, math.nan)
            checks.append(
                MetricCheck(
                    metric=name,
                    kind="vs_champion",
                    value=value,
                    limit=champ - margin,
                    champion=champ,
                    passed=_passes(value, champ - margin),
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
        "gate passed" if passed else f"gate rejected: {', '.join(sorted(set(failed)))} below limit"
    )
    return GateDecision(
        passed=passed,
        first_release=champion is None,
        champion_version=champion_version,
        checks=checks,
        reasons=reasons,
    )
