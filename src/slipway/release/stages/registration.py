"""Stage 6, registration: the MLflow version with lineage, every ONNX file and alias `challenger`."""

from __future__ import annotations

from slipway.registry.base import ModelRegistry, VersionInfo
from slipway.release.context import ReleaseContext
from slipway.release.ledger import Evidence, draft_registration
from slipway.release.outcome import StageOutcome, markdown
from slipway.release.result import ResultPatch
from slipway.reporting.markdown import registration_markdown


def register_version(
    ctx: ReleaseContext, evidence: Evidence, *, registry: ModelRegistry, tracking_uri: str
) -> StageOutcome[VersionInfo]:
    """Blocking; idempotent per release key (a re-run returns the version already registered)."""
    version = registry.register(draft_registration(ctx, evidence))
    return StageOutcome(
        stage="register",
        verdict="passed",
        value=version,
        reasons=(f"registered as version {version.version} with alias challenger",),
        patch=ResultPatch(model_version=version.version, mlflow_run_id=version.run_id),
        artifacts=(
            markdown(
                "registration",
                registration_markdown(version, tracking_uri=tracking_uri),
                "MLflow registration",
            ),
        ),
    )
