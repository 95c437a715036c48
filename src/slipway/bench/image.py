"""`make bench` for the serving image: its size and build/push times, and the size a torch-based
serving image would have on the same base (the CPU torch wheel this machine holds), for comparison.

Writes `image.json` to `out_dir`. Where no builder or base image is usable, every number is null
and `reason` says what to install; the bench never fails for that.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from slipway.images.base import ImageBuilder
from slipway.images.factory import make_builder
from slipway.images.stage import REQUIREMENTS, STAGED_MTIME, build_and_push
from slipway.settings import Settings

TORCH_VERSION = "2.13.0"
WHEEL_DIRS = (Path("/opt/wheels"),)
TORCH_DOCKERFILE = """\
# Comparison only: the serving dependencies plus CPU torch on the same base (what serving with
# torch would ship). The wheel comes in through a bind mount, so it is in no layer.
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python3 -m venv --without-pip /opt/venv
RUN --mount=type=bind,source=wheels,target=/tmp/wheels --mount=type=secret,id=pip-ca \\
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi \\
 && python3 -m pip --python /opt/venv/bin/python install \\
      -r /tmp/wheels/requirements-serve.txt /tmp/wheels/{wheel}
"""


def example_bundle(dst: Path) -> tuple[Path, np.ndarray]:
    """Blocking (~5 s); the example MLP (2 epochs, 48 rows) exported to ONNX as a serving bundle; and the holdout rows."""
    import torch

    from slipway.config import PipelineConfig
    from slipway.data.generate import make_batch
    from slipway.data.reference import load_reference
    from slipway.examples.breast_cancer import train
    from slipway.optimize.export import export_onnx
    from slipway.serving.bundle import write_bundle
    from slipway.training.base import TrainingRequest

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ref = load_reference(PipelineConfig().data)
        request = TrainingRequest(
            frame=make_batch(ref, rows=48, seed=0),
            features=ref.features,
            label=ref.label,
            params={"epochs": 2, "hidden": [8, 4]},
            seed=0,
            target=ref.target,
        )
        holdout, _ = ref.holdout_xy()
        export = export_onnx(train(request).module, example=holdout, path=dst / "export/model.onnx", opset=18)
    finally:
        torch.set_num_threads(before)
    folder = write_bundle(
        dst / "bundle",
        onnx_path=export.path,
        model_name="breast-cancer-mlp",
        model_version="1",
        features=list(ref.features),
        classes=[0, 1],
    )
    return folder, holdout


def torch_wheel(dirs: tuple[Path, ...] = WHEEL_DIRS) -> Path | None:
    """The CPU torch wheel for this Python on this machine (PIP_FIND_LINKS dirs first), or None."""
    links = [Path(p) for p in os.environ.get("PIP_FIND_LINKS", "").split() if p and "://" not in p]
    for folder in (*links, *dirs):
        found = sorted(folder.glob(f"torch-{TORCH_VERSION}+cpu-cp311-*.whl")) if folder.is_dir() else []
        if found:
            return found[0]
    return None


def torch_image_size_mb(builder: ImageBuilder, *, work: Path, repo_root: Path, base_image: str) -> float:
    """Blocking (~1-2 min cold); builds the torch comparison image and returns its size in MB."""
    wheel = torch_wheel()
    if wheel is None:
        raise FileNotFoundError(
            f"no CPU torch {TORCH_VERSION} wheel for cp311 in {[str(d) for d in WHEEL_DIRS]}"
        )
    ctx = work / "torch-context"
    if ctx.exists():
        shutil.rmtree(ctx)
    (ctx / "wheels").mkdir(parents=True)
    shutil.copyfile(REQUIREMENTS, ctx / "wheels/requirements-serve.txt")
    try:  # a hard link when on the same filesystem: the wheel is ~190 MB
        os.link(wheel, ctx / "wheels" / wheel.name)
    except OSError:
        shutil.copyfile(wheel, ctx / "wheels" / wheel.name)
    (ctx / "Dockerfile").write_text(TORCH_DOCKERFILE.replace("{wheel}", wheel.name))
    for path in [ctx, *ctx.rglob("*")]:
        os.utime(path, (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
    image = builder.build(
        context=ctx,
        dockerfile=ctx / "Dockerfile",
        tag="localhost/slipway-bench/torch-serving:compare",
        build_args={"BASE_IMAGE": base_image},
        labels={},
    )
    return round(builder.size_bytes(image) / 1e6, 1)


def _head(repo_root: Path) -> str:
    import subprocess

    done = subprocess.run(
        ["git", "-C", str(repo_root), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


def _unusable(builder: ImageBuilder, base_image: str) -> str | None:
    reason = builder.available()
    if reason is not None:
        return reason
    from slipway.images.buildah import BuildahBuilder

    if isinstance(builder, BuildahBuilder) and not builder.has_image(base_image):
        return (
            f"base image {base_image} is not in {builder.storage_root}: run `make images-setup` (root) and "
            "export SLIPWAY_BASE_IMAGE=localhost/slipway-base:bookworm-py311"
        )
    return None


def run(
    out_dir: Path, *, repo_root: Path, settings: Settings | None = None, with_torch: bool = True
) -> dict[str, Any]:
    """Blocking (~30 s warm, ~2 min cold); writes image.json to out_dir and returns it; never raises for a missing builder."""
    settings = settings or Settings()
    builder = make_builder(settings.image_builder, settings=settings)
    doc: dict[str, Any] = {
        "image_size_mb": None,
        "torch_image_size_mb": None,
        "torch_image_reason": None,
        "builder": builder.name,
        "base_image": settings.base_image,
        "registry": settings.image_registry,
        "reason": _unusable(builder, settings.base_image),
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count()},
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    work = out_dir / "image"
    if doc["reason"] is None:
        work.mkdir(parents=True, exist_ok=True)
        bundle, _ = example_bundle(work)
        kwargs: dict[str, Any] = {
            "bundle_dir": bundle,
            "source_dir": repo_root,
            "model_name": "breast-cancer-mlp",
            "model_version": "1",
            "git_commit": _head(repo_root),
            "registry": settings.image_registry,
            "tls_verify": settings.image_registry_tls_verify,
            "base_image": settings.base_image,
            "work_dir": work,
        }
        first = build_and_push(builder, **kwargs)
        warm = build_and_push(builder, **kwargs)
        doc |= {
            "image_size_mb": first.size_mb,
            "build_s": first.build_s,
            "build_warm_s": warm.build_s,
            "push_s": first.push_s,
            "reference": first.reference,
        }
        if with_torch:
            start = time.perf_counter()
            try:
                doc["torch_image_size_mb"] = torch_image_size_mb(
                    builder, work=work, repo_root=repo_root, base_image=settings.base_image
                )
                doc["torch_image_build_s"] = round(time.perf_counter() - start, 1)
            except Exception as exc:  # the comparison is optional; say why it is missing
                doc["torch_image_reason"] = f"{type(exc).__name__}: {exc}"[:500]
        else:
            doc["torch_image_reason"] = "skipped (--no-torch)"
    else:
        doc["torch_image_reason"] = doc["reason"]
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "image.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc
