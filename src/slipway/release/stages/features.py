"""Stage 1b, the feature_consistency gate (feature-store projects): after materialization, the online store
answers the holdout's entities with exactly the historical features (within `features.skew_atol/rtol`)."""

from __future__ import annotations

from datetime import UTC, datetime

from slipway.features.base import FeatureStore
from slipway.features.skew import SkewReport, SkewVerdict, check_skew
from slipway.names import Tag, Verdict
from slipway.release.context import ReleaseContext
from slipway.release.outcome import StageOutcome, markdown, table

SHOWN = 50  # mismatches listed in the artifact table (all are in the document)


def check_feature_consistency(
    ctx: ReleaseContext, *, store: FeatureStore | None, now: datetime | None = None
) -> StageOutcome[SkewReport | None]:
    """Blocking (Feast: apply, and materialize since the last materialization, both cached on content; one
    historical and one online read);
    skipped without a feature store; rejected naming every mismatched entity, feature and both values."""
    if store is None:
        return StageOutcome(
            stage="feature_consistency",
            verdict="skipped",
            value=None,
            reasons=(),  # nothing to say in a release without a feature store (the batch carries the features)
        )
    applied = store.apply()
    # incremental, as a team's scheduled materialization runs: what changed since the last one; values the online
    # store holds from elsewhere (a stream job, another engine) stay as they are, and are what this gate checks
    materialized = store.materialize(end=now or datetime.now(UTC), start=store.materialized_until())
    holdout = ctx.reference().holdout
    report = check_skew(
        store, holdout, atol=ctx.config.features.skew_atol, rtol=ctx.config.features.skew_rtol
    )
    passed = report.verdict is SkewVerdict.CONSISTENT
    rows = [
        {"entity": str(m.key), "feature": m.feature, "online": m.online, "historical": m.historical}
        for m in report.mismatches[:SHOWN]
    ] + [
        {"entity": str(m.key), "feature": ", ".join(m.absent), "online": "missing", "historical": ""}
        for m in report.missing[:SHOWN]
    ]
    head = f"{report.verdict.value}: {report.entities} holdout entities, {report.compared} values compared"
    artifacts = [
        markdown(
            "feature-consistency",
            "\n".join(f"* {line}" for line in [applied.line(), materialized.line(), *report.lines()]),
            head,
        )
    ]
    if rows:
        artifacts.append(
            table("feature-skew", rows, f"Online vs historical features that differ (first {SHOWN})")
        )
    verdict: Verdict = (
        "passed" if passed else ("rejected" if report.verdict is SkewVerdict.SKEWED else "error")
    )
    return StageOutcome(
        stage="feature_consistency",
        verdict=verdict,
        value=report,
        cause="" if passed else report.reason,
        reasons=(applied.line(), materialized.line(), *report.lines()),
        tags={Tag.FEATURE_CONSISTENCY: head[:250]},
        documents={"slipway/feature_consistency.json": report.to_dict()},
        artifacts=tuple(artifacts),
    )
