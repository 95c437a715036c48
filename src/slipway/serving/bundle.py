"""The serving bundle: a folder with `model.onnx` and `model.json` (what the server needs to know).

`model.json` names the model and version, the feature order, the task and what the model answers
(class labels in output order and whether it returns logits or probabilities; or values, with the
reference label's range and mean), the ONNX file's sha256 and its input/output names. Reading verifies
the sha256, so a swapped file never serves. Bundles written before the task existed read as binary or
multiclass classifiers returning logits.

A model trained on a feature store's feature service also records that service (`feature_service`: its name,
definition hash, entity keys, features in model order, the Feast repository and the online-store override):
the server then answers `/predict` by entity key and refuses Ready while the store's service hash differs.
Bundles without it (every older one) serve by feature values only; model.json then has no such key.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from slipway.errors import UsageError
from slipway.hashing import file_sha256

ONNX_FILE = "model.onnx"
META_FILE = "model.json"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class FeatureServiceMeta(BaseModel):
    """The feature service a model was trained on: what the server opens to answer by entity key."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    name: str = Field(min_length=1, description="The feature service's name in the Feast repository.")
    service_hash: str = Field(
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the service's definition at training (`FeatureStore.service_hash`); the server "
        "refuses Ready while the store's differs.",
    )
    entity_keys: list[str] = Field(
        min_length=1, description="Join keys a `/predict` entity must carry, exactly (sorted)."
    )
    features: list[str] = Field(
        min_length=1, description="The service's features in model input order (= the bundle's `features`)."
    )
    repo: str = Field(min_length=1, description="Absolute path of the Feast repository (feature_store.yaml).")
    online_store: str | None = Field(
        default=None,
        description="Online-store override URL (redis://HOST:PORT[/DB], sqlite:////ABS), password left out; "
        "$SLIPWAY_FEATURES_ONLINE_STORE in the server's environment replaces it. None: the repository's own.",
    )

    @field_validator("online_store")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        return public_store_url(value) if value is not None else None


def public_store_url(url: str) -> str:
    """Pure; an online-store URL without its password (`redis://:pw@host:6379/0` -> `redis://host:6379/0`):
    a bundle is not a place for credentials (the server reads them from $SLIPWAY_FEATURES_ONLINE_STORE)."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def absolute_store_url(url: str, *, base_dir: Path) -> str:
    """Pure; a `sqlite:///relative` online-store URL made absolute against `base_dir` (servers run elsewhere);
    any other URL as it is."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        return prefix + str((base_dir / url[len(prefix) :]).resolve())
    return url


class BundleMeta(BaseModel):
    """The contents of model.json."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    features: list[str] = Field(min_length=1, description="Feature names in the model's input order.")
    task: Literal["binary", "multiclass", "regression"] = Field(description="What the model predicts.")
    classes: list[int | str] = Field(
        default_factory=list, description="Classification: the label of each output column, in order."
    )
    output: Literal["logits", "probabilities", "values"] = Field(
        default="logits",
        description="What the ONNX output holds: logits (softmaxed), probabilities, or values.",
    )
    value_range: tuple[float, float] | None = Field(
        default=None, description="Regression: the reference label's [min, max] (validity, histogram edges)."
    )
    value_mean: float | None = Field(default=None, description="Regression: the reference label's mean.")
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME
    feature_service: FeatureServiceMeta | None = Field(
        default=None,
        description="The feature service the model reads (answers by entity key); None: feature values only.",
    )

    @model_validator(mode="before")
    @classmethod
    def _task_of_old_bundles(cls, raw: Any) -> Any:
        if isinstance(raw, dict) and "task" not in raw and raw.get("classes"):
            return {**raw, "task": "binary" if len(raw["classes"]) == 2 else "multiclass"}
        return raw

    @field_validator("features", "classes")
    @classmethod
    def _unique(cls, value: list[Any]) -> list[Any]:
        if len(set(value)) != len(value):
            raise ValueError("has duplicates")
        return value

    @model_validator(mode="after")
    def _fits_the_task(self) -> BundleMeta:
        if self.task == "regression":
            if self.classes or self.output != "values":
                raise ValueError("a regression bundle has no classes and output 'values'")
        elif (
            len(self.classes) < 2
            or self.output == "values"
            or (self.task == "binary") != (len(self.classes) == 2)
        ):
            raise ValueError(
                f"a {self.task} bundle needs {'2' if self.task == 'binary' else '3+'} classes and logits or probabilities"
            )
        service = self.feature_service
        if service is not None and service.features != self.features:
            raise ValueError(
                f"feature service {service.name!r} serves {service.features} but the model reads {self.features}"
            )
        return self

    def document(self) -> dict[str, Any]:
        """Pure; model.json's content (no `feature_service` key when there is none: older readers, same bytes)."""
        return self.model_dump(
            mode="json", exclude={"feature_service"} if self.feature_service is None else None
        )

    @property
    def width(self) -> int:
        """Output columns of the model: one per class, or one value."""
        return len(self.classes) if self.classes else 1


@dataclass(frozen=True)
class Bundle:
    """A verified bundle on disk."""

    onnx_path: Path
    meta: BundleMeta


def write_bundle(
    dst: Path,
    *,
    onnx_path: Path,
    model_name: str,
    model_version: str,
    features: list[str],
    task: Literal["binary", "multiclass", "regression"] = "binary",
    classes: list[int | str] | None = None,
    output: Literal["logits", "probabilities", "values"] = "logits",
    value_range: tuple[float, float] | None = None,
    value_mean: float | None = None,
    feature_service: FeatureServiceMeta | None = None,
) -> Path:
    """Blocking; idempotent (same inputs, same files); copies the ONNX file into `dst` and writes model.json.
    UsageError when the metadata is inconsistent (a feature service whose features are not `features`)."""
    if not onnx_path.is_file():
        raise UsageError(f"{onnx_path}: no such ONNX file")
    dst.mkdir(parents=True, exist_ok=True)
    target = dst / ONNX_FILE
    if not target.exists() or not os.path.samefile(onnx_path, target):
        shutil.copyfile(onnx_path, target)
    try:
        meta = BundleMeta(
            model_name=model_name,
            model_version=model_version,
            features=list(features),
            task=task,
            classes=list(classes or []),
            output=output,
            value_range=value_range,
            value_mean=value_mean,
            onnx_sha256=file_sha256(target),
            feature_service=feature_service,
        )
    except ValidationError as exc:
        raise UsageError(f"bundle metadata: {_problems(exc)}") from None
    tmp = dst / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta.document(), indent=2) + "\n")
    tmp.replace(dst / META_FILE)
    return dst


def read_bundle(path: Path) -> Bundle:
    """Blocking; the bundle at `path` (its folder, or an .onnx file beside a model.json), sha256 verified; UsageError naming what is wrong."""
    onnx_path, meta_path = _locate(path)
    try:
        raw = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{meta_path}: not readable JSON: {exc}") from None
    try:
        meta = BundleMeta.model_validate(raw)
    except ValidationError as exc:
        raise UsageError(f"{meta_path}: {_problems(exc)}") from None
    actual = file_sha256(onnx_path)
    if actual != meta.onnx_sha256:
        raise UsageError(
            f"{onnx_path}: sha256 {actual[:12]}… does not match {META_FILE}'s onnx_sha256 "
            f"{meta.onnx_sha256[:12]}… (the file changed after the bundle was written)"
        )
    return Bundle(onnx_path=onnx_path, meta=meta)


def _locate(path: Path) -> tuple[Path, Path]:
    if path.is_dir():
        onnx_path, meta_path = path / ONNX_FILE, path / META_FILE
        missing = [p.name for p in (onnx_path, meta_path) if not p.is_file()]
        if missing:
            raise UsageError(
                f"{path}: not a serving bundle, missing {' and '.join(missing)} "
                f"(a bundle is a folder with {ONNX_FILE} and {META_FILE})"
            )
        return onnx_path, meta_path
    if path.is_file():
        if path.suffix != ".onnx":
            raise UsageError(f"{path}: expected a bundle folder or an .onnx file")
        meta_path = path.with_name(META_FILE)
        if not meta_path.is_file():
            raise UsageError(f"{path}: no {META_FILE} beside it (the model's names, classes and sha256)")
        return path, meta_path
    raise UsageError(f"{path}: no such bundle folder or .onnx file")


def _problems(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'document'}: {e['msg']}" for e in exc.errors())
