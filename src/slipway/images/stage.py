"""The build stage's work without Prefect: stage a small build context, build, push, measure.

The context holds only what the serving image needs (the Dockerfile and requirements-serve.txt that
ship inside the package, the installed `slipway` package's source, the bundle under model/), so a
build never sends the repo, its .venv or .slipway, and an installed (non-editable) Slipway builds
the same image as a checkout.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from slipway.errors import ImageError
from slipway.images.base import ImageBuilder

ASSETS = Path(__file__).resolve().parent / "docker"
DOCKERFILE = ASSETS / "Dockerfile.serve"
REQUIREMENTS = ASSETS / "requirements-serve.txt"
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed `slipway` package
BUNDLE_FILES = ("model.onnx", "model.json")
STAGED_MTIME = 315532800  # 1980-01-01: every staged file and folder gets it
_IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo", "*.egg-info", ".mypy_cache")


class ImageRecord(BaseModel):
    """What the build stage leaves: deploy `reference` (by digest), never `tag`."""

    model_config = ConfigDict(frozen=True)

    tag: str = Field(description="Local tag the image was built as.")
    image_id: str = Field(description="The builder's image id (config digest, hex).")
    digest: str | None = Field(description="Registry manifest digest `sha256:...`; None when not pushed.")
    reference: str | None = Field(description="Pinned `repository@sha256:...`; None when not pushed.")
    size_mb: float = Field(description="Uncompressed image size in MB (10^6 bytes).")
    builder: str = Field(description="Builder backend that built it: docker, buildah or fake.")
    build_s: float = Field(description="Wall time of the build.")
    push_s: float | None = Field(description="Wall time of the push; None when not pushed.")
    labels: dict[str, str] = Field(description="Labels read back from the built image.")


def stage_context(dst: Path, *, bundle_dir: Path, package_dir: Path = PACKAGE_DIR) -> Path:
    """Blocking; replaces `dst` with the serving image's build context (Dockerfile included); returns `dst`."""
    assets = package_dir / "images" / "docker"
    missing = [p for p in (assets / DOCKERFILE.name, assets / REQUIREMENTS.name) if not p.is_file()]
    missing += [bundle_dir / f for f in BUNDLE_FILES if not (bundle_dir / f).is_file()]
    if missing:
        raise ImageError("stage", f"missing {', '.join(str(p) for p in missing)}")
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    shutil.copyfile(assets / REQUIREMENTS.name, dst / "requirements-serve.txt")
    shutil.copyfile(assets / DOCKERFILE.name, dst / "Dockerfile")
    shutil.copytree(package_dir, dst / "slipway", ignore=_IGNORED)
    (dst / "model").mkdir()
    for name in BUNDLE_FILES:
        shutil.copyfile(bundle_dir / name, dst / "model" / name)
    # buildah's COPY cache hashes tar headers, mtimes included: a re-staged context must look the same.
    for path in [dst, *dst.rglob("*")]:
        os.utime(path, (STAGED_MTIME, STAGED_MTIME), follow_symlinks=False)
    return dst


def _git(repo_root: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(repo_root), *args], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None


def _bundle_time(bundle_dir: Path) -> str:
    """When the commit is unknown: $SOURCE_DATE_EPOCH, else the ONNX file's mtime (stable per bundle, unlike now)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    seconds = float(epoch) if epoch and epoch.isdigit() else (bundle_dir / "model.onnx").stat().st_mtime
    return datetime.fromtimestamp(int(seconds), UTC).isoformat(timespec="seconds")


def public_url(url: str) -> str:
    """Pure; a remote URL without credentials (`https://user:token@host/x` -> `https://host/x`)."""
    return re.sub(r"^([a-z][a-z0-9+.-]*://)[^/@]+@", r"\1", url)


def image_name(model_name: str) -> str:
    """Pure; a registry-safe repository name for a model (lowercase, [a-z0-9._-])."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower()).strip("-._")
    return name or "model"


def image_labels(
    *, model_name: str, model_version: str, model_sha256: str, git_commit: str, source: str, created: str
) -> dict[str, str]:
    """Pure; the OCI and io.slipway.* labels every serving image carries."""
    return {
        "org.opencontainers.image.revision": git_commit,
        "org.opencontainers.image.source": source,
        "org.opencontainers.image.version": model_version,
        "org.opencontainers.image.created": created,
        "io.slipway.model.name": model_name,
        "io.slipway.model.version": model_version,
        "io.slipway.model.sha256": model_sha256,
    }


def build_and_push(
    builder: ImageBuilder,
    *,
    bundle_dir: Path,
    source_dir: Path,
    model_name: str,
    model_version: str,
    git_commit: str,
    registry: str | None,
    tls_verify: bool,
    base_image: str,
    work_dir: Path | None = None,
) -> ImageRecord:
    """Blocking; stages, builds, pushes to `registry/<model>` (if set); ImageError naming the failed step.

    `source_dir` is the project's checkout (its commit time and remote URL become labels). Labels are deterministic (created = the commit's time; unknown commit: $SOURCE_DATE_EPOCH, else the
    bundle's mtime), so the same release builds the same image id and pushes the same digest.
    """
    reason = builder.available()
    if reason is not None:
        raise ImageError("build", reason)
    model_sha256 = hashlib.sha256((bundle_dir / "model.onnx").read_bytes()).hexdigest()
    created = _git(source_dir, "show", "-s", "--format=%cI", git_commit) or _bundle_time(bundle_dir)
    labels = image_labels(
        model_name=model_name,
        model_version=model_version,
        model_sha256=model_sha256,
        git_commit=git_commit,
        source=public_url(_git(source_dir, "remote", "get-url", "origin") or "unknown"),
        created=created,
    )
    build_args = {
        "BASE_IMAGE": base_image,
        "GIT_COMMIT": git_commit,
        "SOURCE_URL": labels["org.opencontainers.image.source"],
        "CREATED": created,
        "MODEL_NAME": model_name,
        "MODEL_VERSION": model_version,
        "MODEL_SHA256": model_sha256,
    }
    name = image_name(model_name)
    tag = f"localhost/slipway/{name}:v{image_name(model_version)}-{git_commit[:12]}"
    context_dir = (work_dir or bundle_dir.parent) / f"image-context-{name}-{model_version}"
    context = stage_context(context_dir, bundle_dir=bundle_dir)
    start = time.perf_counter()
    built = builder.build(
        context=context, dockerfile=context / "Dockerfile", tag=tag, build_args=build_args, labels=labels
    )
    build_s = time.perf_counter() - start
    size_mb = builder.size_bytes(built) / 1e6
    digest = reference = push_s = None
    if registry:
        start = time.perf_counter()
        pushed = builder.push(built, repository=f"{registry.rstrip('/')}/{name}", tls_verify=tls_verify)
        push_s = time.perf_counter() - start
        digest, reference = pushed.digest, pushed.reference
    return ImageRecord(
        tag=tag,
        image_id=built.image_id,
        digest=digest,
        reference=reference,
        size_mb=round(size_mb, 1),
        builder=builder.name,
        build_s=round(build_s, 2),
        push_s=None if push_s is None else round(push_s, 2),
        labels=built.labels,
    )
