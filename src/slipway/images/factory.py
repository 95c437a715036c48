"""Builds the configured ImageBuilder; `auto` takes docker if its daemon answers, else buildah."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from slipway.images.base import ImageBuilder, NoBuilder
from slipway.settings import Settings

BuilderKind = Literal["auto", "buildah", "docker", "fake"]

NO_BUILDER = "no image builder: install buildah (apt-get install buildah) or Docker"
SYSTEM_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


def build_secrets(env: Mapping[str, str]) -> dict[str, Path]:
    """The `pip-ca` build secret: $PIP_CERT, else $SSL_CERT_FILE, else the system CA bundle, if the file exists."""
    for candidate in (env.get("PIP_CERT"), env.get("SSL_CERT_FILE"), str(SYSTEM_CA_BUNDLE)):
        if candidate and Path(candidate).is_file():
            return {"pip-ca": Path(candidate)}
    return {}


def make_builder(kind: BuilderKind = "auto", *, settings: Settings | None = None) -> ImageBuilder:
    """The builder named by `kind`; `auto` returns a NoBuilder whose available() says what to install."""
    settings = settings or Settings()
    if kind == "fake":
        from slipway.images.fake import FakeBuilder

        return FakeBuilder()
    from slipway.images.buildah import BuildahBuilder
    from slipway.images.docker import DockerBuilder

    secrets = build_secrets(os.environ)
    buildah = BuildahBuilder(
        root=settings.buildah_root_path(), runroot=settings.buildah_runroot_path(), secrets=secrets
    )
    docker = DockerBuilder(secrets=secrets)
    if kind == "buildah":
        return buildah
    if kind == "docker":
        return docker
    docker_reason = docker.available()
    if docker_reason is None:
        return docker
    buildah_reason = buildah.available()
    if buildah_reason is None:
        return buildah
    return NoBuilder(f"{NO_BUILDER} (docker: {docker_reason}; buildah: {buildah_reason})")
