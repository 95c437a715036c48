"""Packaging steps of the release: the serving bundle of a version and its container image.

Plain Python; the stages in `slipway.release.stages` call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from slipway.config import PipelineConfig
from slipway.data.reference import Reference
from slipway.errors import FeatureStoreError, ImageError
from slipway.images.base import ImageBuilder
from slipway.images.stage import ImageRecord, build_and_push
from slipway.names import TAG_VALUE_LIMIT, Tag
from slipway.serving.bundle import FeatureServiceMeta, absolute_store_url, write_bundle
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
    feature_service: FeatureServiceMeta | None = None,
) -> Path:
    """Blocking; idempotent; the serving bundle (ONNX file + model.json: the reference's schema, task and
    classes; for a regression, the label's range and mean; the feature service it reads, if any:
    `feature_service_meta`)."""
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
            feature_service=feature_service,
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
        feature_service=feature_service,
    )


def feature_service_meta(
    cfg: PipelineConfig,
    *,
    features: Sequence[str],
    settings: Settings | None = None,
    service_hash: str | None = None,
) -> FeatureServiceMeta | None:
    """Blocking (Feast: import on first use, one registry read); what a bundle records of the configured feature
    service (`features.store: feast`), None without one. `features` are the model's inputs: FeatureStoreError
    naming both lists when they are not the service's features in its order. `service_hash` is recorded
    instead of the store's current one (a registered version's own `slipway.features.service_sha256`, so a
    champion trained on an older definition refuses Ready against a changed one)."""
    from slipway.features.factory import make_feature_store, online_store_url

    store = make_feature_store(cfg, settings=settings or Settings())
    if store is None:
        return None
    served = list(store.features())
    if served != list(features):
        raise FeatureStoreError(
            f"feature service {cfg.features.service!r} serves {served}, but the model reads {list(features)}: "
            "train on the service's historical features (same names, same order)"
        )
    url = online_store_url(cfg)
    assert cfg.features.repo is not None and cfg.features.service is not None  # the config validates both
    return FeatureServiceMeta(
        name=cfg.features.service,
        service_hash=service_hash or store.service_hash(),
        entity_keys=list(store.entity_keys()),
        features=served,
        repo=str(cfg.resolve(cfg.features.repo).resolve()),
        online_store=absolute_store_url(url, base_dir=cfg.base_dir) if url else None,
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
