"""Real images in tests: buildah over the configured storage (or a skip naming what is missing), and
podman over a throwaway storage with the flags that work on these machines."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from slipway.images.buildah import BuildahBuilder
from slipway.images.factory import make_builder
from slipway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def registry_listening(registry: str) -> bool:
    host, _, port = registry.split("/", 1)[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 443)), timeout=1):
            return True
    except (OSError, ValueError):
        return False


def git_commit() -> str:
    done = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() if done.returncode == 0 else "0" * 40


@pytest.fixture(scope="module")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="module")
def builder(settings: Settings) -> BuildahBuilder:
    """buildah over the configured storage, or a skip naming what is missing."""
    made = make_builder("buildah", settings=settings)
    assert isinstance(made, BuildahBuilder)
    missing = [m for m in (made.available(),) if m]
    if shutil.which("podman") is None or shutil.which("runc") is None:
        missing.append("podman + runc (apt-get install podman runc)")
    if not settings.image_registry or not registry_listening(settings.image_registry):
        missing.append(f"a registry listening at SLIPWAY_IMAGE_REGISTRY={settings.image_registry}")
    if not missing and not made.has_image(settings.base_image):
        missing.append(f"base image {settings.base_image} in {made.storage_root} (SLIPWAY_BASE_IMAGE)")
    if missing:
        pytest.skip("serving image needs " + "; ".join(missing) + ": run `make images-setup` as root")
    return made


class Podman:
    """podman over its own throwaway storage, with the flags that work on these machines (runc, cgroupfs)."""

    def __init__(self, root: Path) -> None:
        self.base = [
            "podman", "--root", str(root / "storage"), "--runroot", str(root / "run"),
            "--storage-driver", "overlay", "--runtime", "runc", "--cgroup-manager", "cgroupfs",
            "--events-backend", "file",
        ]  # fmt: skip

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [*self.base, *args], capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"podman {' '.join(args[:3])} exited {done.returncode}: {done.stderr[-2000:]}"
            )
        return done
