"""Stage 3, the quality gate: holdout metrics against absolute floors and against the champion."""

from __future__ import annotations

from slipway.evaluation.scoring import evaluate
from slipway.gate.quality import decide
from slipway.lineage.collect import lineage_tags
from slipway.names import CHAMPION, Tag
from slipway.registry.base import ModelRegistry
from slipway.release.canary_stage import version_output
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, GateEvidence, required
from slipway.release.outcome import StageOutcome, markdown, table
from slipway.release.result import ResultPatch
from slipway.reporting.markdown import gate_markdown, gate_rows

MODEL_TAGS = (Tag.FRAMEWORK, Tag.MODEL_CLASS, Tag.MODEL_OUTPUT)


def quality_gate(
    ctx: ReleaseContext, evidence: Evidence, *, registry: ModelRegistry
) -> StageOutcome[GateEvidence]:
    """Blocking (model loads, ~1 s); rejected when a floor or the champion comparison fails; tags the lineage."""
    trained = required(evidence.trained, what="a trained model")
    ref = ctx.reference()
    x, y = ref.holdout_xy()
    output = ctx.config.training.output
    metrics = evaluate(trained.module, x=x, y=y, target=ref.target, output=output)
    champion = registry.get_alias(model_name=ctx.model_name, alias=CHAMPION)
    champion_metrics = None
    if champion is not None:
        champion_metrics = evaluate(  # as the champion answers (its own tag: it may be of another framework)
            registry.load_model(uri=champion.uri),
            x=x,
            y=y,
            target=ref.target,
            output=version_output(champion, fallback=output),
        )
    decision = decide(
        challenger=metrics,
        champion=champion_metrics,
        champion_version=champion.version if champion else None,
        cfg=ctx.config.quality_gate,
        task=ref.target.task,
    )
    tags = lineage_tags(
        git=ctx.git,
        data_sha256=ctx.data_sha256,
        suite_sha256=ctx.suite_sha256,
        suite_version=ctx.suite.version,
        training_config_sha256=ctx.training_config_sha256,
        training_code_sha256=ctx.training_code_sha256,
        holdout_sha256=ref.holdout_hash(),
        source=ctx.model_uri or f"trained:{ctx.config.training.entrypoint}",
    )
    tags |= {k: v for k, v in evidence.tags.items() if k in MODEL_TAGS}  # what the model is (training stage)
    tags |= {
        Tag.QUALITY_GATE: "passed" if decision.passed else "rejected",
        Tag.CHAMPION_COMPARED: decision.champion_version or "none (first release)",
        Tag.CONFIG_SHA256: ctx.config_sha256,
    }
    failed = [r for r in decision.reasons if r.startswith("FAIL")]
    return StageOutcome(
        stage="quality_gate",
        verdict="passed" if decision.passed else "rejected",
        value=GateEvidence(metrics=metrics, decision=decision),
        cause="; ".join(failed),
        reasons=tuple(decision.reasons),
        tags=tags,
        documents={"slipway/quality_gate.json": decision.model_dump(mode="json")},
        patch=ResultPatch(metrics=metrics, champion_version=decision.champion_version, lineage=tags),
        artifacts=(
            table("quality-gate", gate_rows(decision), "Quality gate checks"),
            markdown("quality-gate-decision", gate_markdown(decision), "Quality gate"),
        ),
    )
