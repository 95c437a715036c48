"""`slipway why VERSION`: where a version came from and why it was decided, from its registry tags alone.

One registry read; nothing else is imported, so the answer comes back in about the time MLflow takes to import.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from slipway.errors import RegistryError, UsageError
from slipway.registry.base import VersionInfo, VersionReader

NOT_RECORDED = "not recorded"

# (section, label, tag keys tried in order)
FIELDS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("source", "git commit", ("slipway.git_commit",)),
    ("source", "git dirty", ("slipway.git_dirty",)),
    ("source", "model source", ("slipway.model_source",)),
    ("source", "training code sha256", ("slipway.training_code_sha256",)),
    ("data", "data sha256", ("slipway.data_sha256",)),
    ("data", "suite sha256", ("slipway.suite_sha256",)),
    ("data", "suite version", ("slipway.suite_version",)),
    ("data", "holdout sha256", ("slipway.holdout_sha256",)),
    ("config", "training config sha256", ("slipway.training_config_sha256",)),
    ("config", "release key", ("slipway.release_key",)),
    ("image", "digest", ("slipway.image.digest",)),
    ("image", "reference", ("slipway.image.reference",)),
    ("image", "status", ("slipway.image.status",)),
    ("image", "reason", ("slipway.image.reason",)),
    ("optimizer", "shipped", ("slipway.optimize.shipped",)),
    ("optimizer", "artifact", ("slipway.optimize.shipped_artifact",)),
    ("optimizer", "artifact sha256", ("slipway.optimize.shipped_sha256",)),
    ("optimizer", "onnx opset", ("slipway.onnx.opset",)),
    ("optimizer", "parity", ("slipway.parity",)),
    ("optimizer", "parity max abs error", ("slipway.parity.max_abs_error",)),
    ("optimizer", "tensorrt", ("slipway.tensorrt.status",)),
    ("gates", "quality gate", ("slipway.quality_gate",)),
    ("gates", "compared with champion", ("slipway.champion_compared",)),
    ("canary", "result", ("slipway.canary.result",)),
    ("canary", "reason", ("slipway.canary.reason",)),
    ("canary", "peak weight", ("slipway.canary.peak_weight",)),
    ("canary", "decisions", ("slipway.canary.decisions",)),
    ("canary", "against stable", ("slipway.canary.stable_version",)),
    ("decision", "decision", ("slipway.decision",)),
    ("decision", "rejected at", ("slipway.rejected_at",)),
    ("decision", "reason", ("slipway.promotion_reason", "slipway.rejection_reason")),
    ("decision", "promoted at", ("slipway.promoted_at",)),
    ("decision", "previous champion", ("slipway.previous_champion",)),
    ("decision", "champion since", ("slipway.champion_since",)),
    ("rollback", "last rollback", ("slipway.rollback.id",)),
    ("rollback", "from", ("slipway.rollback.from",)),
    ("rollback", "to", ("slipway.rollback.to",)),
    ("rollback", "at", ("slipway.rollback.at",)),
    ("rollback", "by", ("slipway.rollback.by",)),
    ("rollback", "reason", ("slipway.rollback.reason",)),
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
