"""Packaging steps of the release: the serving bundle of a version and its container image.

Plain Python; the stages in `slipway.release.stages` call them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from slipway.data.reference import Reference
from slipway.errors import ImageError
from slipway.images.base import ImageBuilder
from slipway.images.stage import ImageRecord, build_and_push
from slipway.names import TAG_VALUE_LIMIT, Tag
from slipway.serving.bundle import write_bundle
from slipway.settings import Settings


class ImageOutcome(BaseModel):
    """The image stage's result: built (and pushed, pinned by digest), skipped (why), or failed (why)."""

    status: str = Field(description="built | skipped | failed")
    reason: str = Field(default="", description="Why skipped or failed; what to install or fix.")
    record: ImageRecord | None = None
    bundle_dir: str | None = Field(
        default=None,
        description="The version's serving bundle (what the image holds; the local target serves it).",
    )

    def tags(self) -> dict[str, str]:
        """`slipway.image.*` version tags; later stages deploy `slipway.image.reference` (by digest)."""
        tags = {Tag.IMAGE_STATUS: self.status}
        if self.reason:
            tags[Tag.IMAGE_REASON] = self.reason[:TAG_VALUE_LIMIT]
        if self.record is not None:
            tags |= {
                Tag.IMAGE_TAG: self.record.tag,
                Tag.IMAGE_ID: self.record.image_id,
                Tag.IMAGE_SIZE_MB: f"{self.record.size_mb:.1f}",
                Tag.IMAGE_BUILDER: self.record.builder,
            }
            if self.record.digest and self.record.reference:
                tags |= {Tag.IMAGE_DIGEST: self.record.digest, Tag.IMAGE_REFERENCE: self.record.reference}
        return tags

    def summary(self) -> str:
        """One line for the release reasons."""
        if self.status == "built" and self.record is not None:
            where = self.record.reference or f"{self.record.tag} (not pushed: no image registry configured)"
            return f"image: built by {self.record.builder}, {self.record.size_mb:.0f} MB, {where}"
        return f"image: {self.status} ({self.reason})"


def serving_bundle(
    onnx_path: Path,
    *,
    dst: Path,
    model_name: str,
    model_version: str,
    ref: Reference,
    output: Literal["logits", "probabilities"] = "logits",
) -> Path:
    """Blocking; idempotent; the serving bundle (ONNX file + model.json: the reference's schema, task and
    classes; for a regression, the label's range and mean)."""
    target = ref.target
    if target.classification:
        return write_bundle(
            dst,
            onnx_path=onnx_path,
            model_name=model_name,
            model_version=model_version,
            features=list(ref.features),
            task=target.task,
            classes=list(target.classes),
            output=output,
        )
    labels = ref.frame()[ref.label].to_numpy(dtype=np.float64)
    return write_bundle(
        dst,
        onnx_path=onnx_path,
        model_name=model_name,
        model_version=model_version,
        features=list(ref.features),
        task="regression",
        output="values",
        value_range=(float(labels.min()), float(labels.max())),
        value_mean=float(labels.mean()),
    )


def build_image(
    builder: ImageBuilder,
    *,
    bundle: Path,
    model_name: str,
    model_version: str,
    git_commit: str,
    source_dir: Path,
    settings: Settings,
) -> ImageOutcome:
    """Blocking (seconds to minutes); skipped with what to install when there is no builder; never raises ImageError."""
    reason = builder.available()
    if reason is not None:
        return ImageOutcome(
            status="skipped", reason=f"{reason}; continuing without an image", bundle_dir=str(bundle)
        )
    try:
        record = build_and_push(
            builder,
            bundle_dir=bundle,
            source_dir=source_dir,
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
        return ImageOutcome(status="failed", reason=reason, bundle_dir=str(bundle))
    return ImageOutcome(status="built", record=record, bundle_dir=str(bundle))
