"""Helpers for the local target's podman mode in tests: real images built + pushed, podman over its own storage.

The image build, the skip when buildah/podman/runc/registry/base image are missing, and the `Podman`
CLI helper come from `test_serving_image.py`; this only adds what the deploy target needs on top.
"""

from __future__ import annotations

from pathlib import Path

from slipway.deploy.podman import PodmanRuntime, container_prefix
from slipway.images.buildah import BuildahBuilder
from slipway.images.stage import build_and_push
from slipway.settings import Settings
from tests.support.images import REPO, Podman, git_commit


def push_images(
    builder: BuildahBuilder, *, settings: Settings, bundles: dict[str, Path], model_name: str
) -> dict[str, str]:
    """Blocking (a build per bundle, cached layers); version -> `repo@sha256:...` in the registry."""
    assert settings.image_registry is not None
    refs = {}
    for version, bundle in bundles.items():
        record = build_and_push(
            builder,
            bundle_dir=bundle,
            source_dir=REPO,
            model_name=model_name,
            model_version=version,
            git_commit=git_commit(),
            registry=settings.image_registry,
            tls_verify=settings.image_registry_tls_verify,
            base_image=settings.base_image,
            work_dir=bundle.parent / f"image-v{version}",
        )
        assert record.reference is not None and "@sha256:" in record.reference
        refs[version] = record.reference
    return refs


def runtime(root: Path, *, settings: Settings) -> PodmanRuntime:
    """The local target's podman runtime over the same storage as `Podman(root)` (runc, cgroupfs)."""
    return PodmanRuntime(
        root=root / "storage",
        runroot=root / "run",
        storage_driver="overlay",
        tls_verify=settings.image_registry_tls_verify,
        pull_timeout_s=300.0,
        run_args=("--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"),
    )


def containers(podman: Podman, *, state_dir: Path, running_only: bool = False) -> list[str]:
    """Blocking; names of the containers (any state, unless running_only) of the deployment in `state_dir`."""
    args = ["ps", "--format", "{{.Names}}", "--filter", f"name=^{container_prefix(state_dir)}"]
    if not running_only:
        args.insert(1, "--all")
    return sorted(line for line in podman(*args).stdout.split() if line)
