"""`slipway why VERSION`: where a version came from and why it was decided, from its registry tags alone.

One registry read; nothing else is imported, so the answer comes back in about the time MLflow takes to import.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from slipway.errors import RegistryError, UsageError
from slipway.names import Tag
from slipway.registry.base import VersionInfo, VersionReader

NOT_RECORDED = "not recorded"

# (section, label, tag keys tried in order)
FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("source", "git commit", (Tag.GIT_COMMIT,)),
    ("source", "git dirty", (Tag.GIT_DIRTY,)),
    ("source", "model source", (Tag.MODEL_SOURCE,)),
    ("source", "trigger", (Tag.TRIGGER,)),
    ("source", "training code sha256", (Tag.TRAINING_CODE_SHA256,)),
    ("data", "data sha256", (Tag.DATA_SHA256,)),
    ("data", "suite sha256", (Tag.SUITE_SHA256,)),
    ("data", "suite version", (Tag.SUITE_VERSION,)),
    ("data", "holdout sha256", (Tag.HOLDOUT_SHA256,)),
    ("features", "service", (Tag.FEATURE_SERVICE,)),
    ("features", "service sha256", (Tag.FEATURE_SERVICE_HASH,)),
    ("features", "view versions", (Tag.FEATURE_VIEWS,)),
    ("features", "consistency", (Tag.FEATURE_CONSISTENCY,)),
    ("config", "training config sha256", (Tag.TRAINING_CONFIG_SHA256,)),
    ("config", "release key", (Tag.RELEASE_KEY,)),
    ("image", "digest", (Tag.IMAGE_DIGEST,)),
    ("image", "reference", (Tag.IMAGE_REFERENCE,)),
    ("image", "status", (Tag.IMAGE_STATUS,)),
    ("image", "reason", (Tag.IMAGE_REASON,)),
    ("optimizer", "shipped", (Tag.SHIPPED,)),
    ("optimizer", "artifact", (Tag.SHIPPED_ARTIFACT,)),
    ("optimizer", "artifact sha256", (Tag.SHIPPED_SHA256,)),
    ("optimizer", "onnx opset", (Tag.ONNX_OPSET,)),
    ("optimizer", "parity", (Tag.PARITY,)),
    ("optimizer", "parity max abs error", (Tag.PARITY_MAX_ABS_ERROR,)),
    ("optimizer", "tensorrt", (Tag.TENSORRT_STATUS,)),
    ("gates", "quality gate", (Tag.QUALITY_GATE,)),
    ("gates", "compared with champion", (Tag.CHAMPION_COMPARED,)),
    ("canary", "result", (Tag.CANARY_RESULT,)),
    ("canary", "reason", (Tag.CANARY_REASON,)),
    ("canary", "peak weight", (Tag.CANARY_PEAK_WEIGHT,)),
    ("canary", "decisions", (Tag.CANARY_DECISIONS,)),
    ("canary", "against stable", (Tag.CANARY_STABLE_VERSION,)),
    ("decision", "decision", (Tag.DECISION,)),
    ("decision", "rejected at", (Tag.REJECTED_AT,)),
    ("decision", "reason", (Tag.PROMOTION_REASON, Tag.REJECTION_REASON)),
    ("decision", "promoted at", (Tag.PROMOTED_AT,)),
    ("decision", "previous champion", (Tag.PREVIOUS_CHAMPION,)),
    ("decision", "champion since", (Tag.CHAMPION_SINCE,)),
    ("rollback", "last rollback", (Tag.ROLLBACK_ID,)),
    ("rollback", "from", (Tag.ROLLBACK_FROM,)),
    ("rollback", "to", (Tag.ROLLBACK_TO,)),
    ("rollback", "at", (Tag.ROLLBACK_AT,)),
    ("rollback", "by", (Tag.ROLLBACK_BY,)),
    ("rollback", "reason", (Tag.ROLLBACK_REASON,)),
)
# sections shown even when nothing in them was recorded (the rest only when present)
ALWAYS = ("source", "data", "config", "image", "optimizer", "gates", "canary", "decision")


class Provenance(BaseModel):
    """The answer of `slipway why`: the version, its roles, and its tags grouped by section."""

    model_name: str
    version: str
    run_id: str | None
    aliases: list[str]
    sections: dict[str, dict[str, str]] = Field(description="section -> label -> value (or 'not recorded').")


def provenance_of(v: VersionInfo) -> Provenance:
    """Pure; the provenance sections of a version from its tags."""
    sections: dict[str, dict[str, str]] = {}
    for section, label, keys in FIELDS:
        value = next((v.tags[k] for k in keys if v.tags.get(k)), None)
        if value is None and section not in ALWAYS:
            continue
        sections.setdefault(section, {})[label] = value if value is not None else NOT_RECORDED
    return Provenance(
        model_name=v.name, version=v.version, run_id=v.run_id, aliases=list(v.aliases), sections=sections
    )


def provenance(*, registry: VersionReader, model_name: str, version: str) -> Provenance:
    """Non-blocking read (one registry call); UsageError naming the version when it does not exist."""
    try:
        return provenance_of(registry.get_version(model_name=model_name, version=version))
    except RegistryError:
        raise UsageError(f"version {version!r} of model {model_name} does not exist") from None


def render_provenance(p: Provenance) -> list[str]:
    """Pure; the plain-text lines of `slipway why`."""
    roles = f" ({', '.join(p.aliases)})" if p.aliases else ""
    lines = [f"{p.model_name} version {p.version}{roles}, run {p.run_id or 'none'}"]
    for section, values in p.sections.items():
        lines.append(f"{section}:")
        lines.extend(f"  {label}: {value}" for label, value in values.items())
    return lines
