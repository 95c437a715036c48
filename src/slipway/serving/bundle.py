"""The serving bundle: a folder with `model.onnx` and `model.json` (what the server needs to know).

`model.json` names the model and version, the feature order, the class labels, the ONNX file's
sha256 and its input/output names. Reading verifies the sha256, so a swapped file never serves.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from slipway.errors import UsageError
from slipway.hashing import file_sha256

ONNX_FILE = "model.onnx"
META_FILE = "model.json"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


class BundleMeta(BaseModel):
    """The contents of model.json."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    model_name: str = Field(min_length=1)
    model_version: str = Field(min_length=1)
    features: list[str] = Field(min_length=1, description="Feature names in the model's input order.")
    classes: list[int] = Field(min_length=1, description="Class label of each logit column.")
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    input_name: str = INPUT_NAME
    output_name: str = OUTPUT_NAME

    @field_validator("features", "classes")
    @classmethod
    def _unique(cls, value: list[str] | list[int]) -> list[str] | list[int]:
        if len(set(value)) != len(value):
            raise ValueError("has duplicates")
        return value


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
    classes: list[int],
) -> Path:
    """Blocking; idempotent (same inputs, same files); copies the ONNX file into `dst` and writes model.json."""
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
            classes=list(classes),
            onnx_sha256=file_sha256(target),
        )
    except ValidationError as exc:
        raise UsageError(f"bundle metadata: {_problems(exc)}") from None
    tmp = dst / f".{META_FILE}.tmp"
    tmp.write_text(json.dumps(meta.model_dump(mode="json"), indent=2) + "\n")
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
