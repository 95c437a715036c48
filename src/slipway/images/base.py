"""The ImageBuilder interface: build an image from a Dockerfile, push it, report its size, remove it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict


class BuiltImage(BaseModel):
    """An image in a builder's local storage."""

    model_config = ConfigDict(frozen=True)

    tag: str
    image_id: str
    labels: dict[str, str]
    builder: str


class PushedImage(BaseModel):
    """An image in a registry, addressed by content: deploy `reference`, never the tag."""

    model_config = ConfigDict(frozen=True)

    repository: str
    tag: str
    digest: str
    reference: str


class ImageBuilder(ABC):
    """One way to build and push OCI images (a CLI, a daemon, or memory)."""

    name: ClassVar[str]

    @abstractmethod
    def available(self) -> str | None:
        """None when this builder can build here, else a reason that says what to install or start."""

    @abstractmethod
    def build(
        self, *, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Blocking; builds `dockerfile` over `context` as `tag`; idempotent (the layer cache gives the same id)."""

    @abstractmethod
    def push(self, image: BuiltImage, *, repository: str, tls_verify: bool) -> PushedImage:
        """Blocking; pushes as `repository:<image tag>` and returns the registry digest and `repository@digest`."""

    @abstractmethod
    def size_bytes(self, image: BuiltImage) -> int:
        """Uncompressed size of the image in local storage, all layers."""

    @abstractmethod
    def remove(self, image: BuiltImage) -> None:
        """Removes the image's tag from local storage (its layers stay while other images use them)."""

    @abstractmethod
    def server_command(
        self, image_id: str, *, name: str, port: int, env: dict[str, str], run_args: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """Pure once probed; (the foreground command serving `image_id` on 127.0.0.1:`port` as container `name`,
        the command that removes that container); `run_args`: this machine's extra run flags (e.g. ulimits,
        `deploy.local.podman.run_args`); ImageError("run") when images cannot run here."""


def container_env(env: dict[str, str], *, port: int) -> list[str]:
    """Pure; `-e KEY=VALUE` flags: `env` plus the server's port and loopback host."""
    full = {**env, "SLIPWAY_SERVE_PORT": str(port), "SLIPWAY_SERVE_HOST": "127.0.0.1"}
    return [arg for key, value in full.items() for arg in ("-e", f"{key}={value}")]


def tag_part(reference: str) -> str:
    """Pure; the tag of `name:tag` (`latest` when there is none; a registry port is not a tag)."""
    last = reference.rsplit("/", 1)[-1]
    return last.rsplit(":", 1)[1] if ":" in last else "latest"


class NoBuilder(ImageBuilder):
    """Stands in when no builder works here: `available()` says what to install; the rest raise ImageError."""

    name = "none"

    def __init__(self, reason: str) -> None:
        self._reason = reason

    def available(self) -> str | None:
        """Always the reason no builder can be used."""
        return self._reason

    def build(
        self, *, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Raises ImageError("build") with the reason."""
        from slipway.errors import ImageError

        raise ImageError("build", self._reason)

    def push(self, image: BuiltImage, *, repository: str, tls_verify: bool) -> PushedImage:
        """Raises ImageError("push") with the reason."""
        from slipway.errors import ImageError

        raise ImageError("push", self._reason)

    def size_bytes(self, image: BuiltImage) -> int:
        """Raises ImageError("inspect") with the reason."""
        from slipway.errors import ImageError

        raise ImageError("inspect", self._reason)

    def remove(self, image: BuiltImage) -> None:
        """Nothing to remove."""

    def server_command(
        self, image_id: str, *, name: str, port: int, env: dict[str, str], run_args: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """Raises ImageError("run") with the reason."""
        from slipway.errors import ImageError

        raise ImageError("run", self._reason)
