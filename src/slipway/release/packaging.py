"""Packaging steps of the release: the serving bundle, the servability check and the image stage.

Plain Python; the tasks in `tasks/package.py` wrap them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import BaseModel, Field

import slipway
from slipway.data.reference import Reference
from slipway.errors import ImageError
from slipway.images.base import ImageBuilder
from slipway.images.stage import ImageRecord, build_and_push
from slipway.names import Tag
from slipway.optimize.stage import OptimizationOutcome
from slipway.serving.bundle import write_bundle
from slipway.serving.servability import ServabilityReport, check_servability, expected_probabilities
from slipway.settings import Settings

DOCKERFILE = Path("infra/docker/Dockerfile.serve")


class ImageOutcome(BaseModel):
    """The image stage's result: built (and pushed, pinned by digest), skipped (why), or failed (why)."""

    status: str = Field(description="built | skipped | failed")
    reason: str = Field(default="", description="Why skipped or failed; what to install or fix.")
    record: ImageRecord | None = None

    def tags(self) -> dict[str, str]:
        """`slipway.image.*` version tags; later stages deploy `slipway.image.reference` (by digest)."""
        tags = {Tag.IMAGE_STATUS: self.status}
        if self.reason:
            tags[Tag.IMAGE_REASON] = self.reason[:500]
        if self.record is not None:
            tags |= {
                Tag.IMAGE_TAG: self.record.tag,
                Tag.IMAGE_ID: self.record.image_id,
                Tag.IMAGE_SIZE_MB: f"{self.record.size_mb:.1f}",
                Tag.IMAGE_BUILDER: self.record.builder,
            }
            if self.record.digest and self.record.reference:
                tags |= {
                    Tag.IMAGE_DIGEST: self.record.digest,
                    Tag.IMAGE_REFERENCE: self.record.reference,
                }
        return tags

    def summary(self) -> str:
        """One line for the release reasons."""
        if self.status == "built" and self.record is not None:
            where = self.record.reference or f"{self.record.tag} (not pushed: no image registry configured)"
            return f"image: built by {self.record.builder}, {self.record.size_mb:.0f} MB, {where}"
        return f"image: {self.status} ({self.reason})"


def source_root() -> Path | None:
    """The Slipway checkout holding the serving Dockerfile (an editable install), or None."""
    for parent in Path(slipway.__file__).resolve().parents:
        if (parent / DOCKERFILE).is_file() and (parent / "pyproject.toml").is_file():
            return parent
    return None


def make_bundle(
    outcome: OptimizationOutcome, *, dst: Path, model_name: str, model_version: str, ref: Reference
) -> Path:
    """Blocking; the serving bundle (shipped ONNX + model.json) for one model version."""
    shipped = Path(outcome.artifacts[outcome.shipped_artifact()])
    _, y = ref.holdout_xy()
    return write_bundle(
        dst,
        onnx_path=shipped,
        model_name=model_name,
        model_version=model_version,
        features=list(ref.features),
        classes=sorted(int(c) for c in np.unique(y)),
    )


def servability(bundle: Path, *, ref: Reference, timeout_s: float) -> ServabilityReport:
    """Blocking (a few s); serves the bundle in a subprocess and compares it with offline ORT on the holdout."""
    x, _ = ref.holdout_xy()
    expected = expected_probabilities(bundle / "model.onnx", x)
    return check_servability(bundle, x=x, expected=expected, timeout_s=timeout_s)


def build_image(
    builder: ImageBuilder,
    *,
    bundle: Path,
    model_name: str,
    model_version: str,
    git_commit: str,
    settings: Settings,
) -> ImageOutcome:
    """Blocking (seconds to minutes); skipped with what to install when no builder or Dockerfile; never raises ImageError."""
    reason = builder.available()
    if reason is not None:
        return ImageOutcome(
            status="skipped", reason=f"{reason}; continuing with the local process deploy target"
        )
    root = source_root()
    if root is None:
        return ImageOutcome(
            status="skipped",
            reason=f"{DOCKERFILE} not found beside the installed slipway package (install it from a checkout)",
        )
    try:
        record = build_and_push(
            builder,
            bundle_dir=bundle,
            repo_root=root,
            model_name=model_name,
            model_version=model_version,
            git_commit=git_commit,
            registry=settings.image_registry,
            tls_verify=settings.image_registry_tls_verify,
            base_image=settings.base_image,
            work_dir=settings.work_path(),
        )
    except ImageError as exc:
        reason = str(exc)
        if "pull" in reason or "FROM" in reason:
            reason += (
                f" [hint: the base image {settings.base_image!r} cannot be pulled here; set SLIPWAY_BASE_IMAGE to "
                "one this machine can pull, or run `make images-setup` to build a local base]"
            )
        return ImageOutcome(status="failed", reason=reason)
    return ImageOutcome(status="built", record=record)
