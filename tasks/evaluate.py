"""Quality gate tasks: holdout evaluation, champion comparison, the decision and its artifacts."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE

from slipway.data.reference import load_reference
from slipway.gate.quality import GateDecision
from slipway.registry.base import VersionInfo
from slipway.registry.factory import make_registry
from slipway.release.steps import ReleaseInputs, champion_metrics, holdout_metrics, quality_gate
from slipway.reporting.markdown import gate_markdown, gate_rows
from slipway.settings import Settings
from slipway.training.base import TrainedModel
from tasks.retry import transient_only


@task(name="evaluate-holdout", cache_policy=NO_CACHE, timeout_seconds=600)
def evaluate_challenger(inputs: ReleaseInputs, trained: TrainedModel) -> dict[str, float]:
    """The challenger's metrics on the fixed holdout."""
    return holdout_metrics(trained.module, ref=load_reference(inputs.config().data))


@task(
    name="evaluate-champion",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=transient_only,
    timeout_seconds=600,
)
def evaluate_champion(inputs: ReleaseInputs) -> tuple[VersionInfo, dict[str, float]] | None:
    """The champion's metrics on the same holdout, or None on a first release."""
    cfg = inputs.config()
    return champion_metrics(registry=make_registry(Settings(), cfg), cfg=cfg, ref=load_reference(cfg.data))


@task(name="quality-gate", cache_policy=NO_CACHE)
def gate(
    inputs: ReleaseInputs, metrics: dict[str, float], champion: tuple[VersionInfo, dict[str, float]] | None
) -> GateDecision:
    """The decision, published as a table and a Markdown artifact."""
    decision = quality_gate(metrics=metrics, champion=champion, cfg=inputs.config())
    create_table_artifact(key="quality-gate", table=gate_rows(decision), description="Quality gate checks")
    create_markdown_artifact(
        key="quality-gate-decision", markdown=gate_markdown(decision), description="Quality gate"
    )
    return decision
