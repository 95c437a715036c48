"""An in-memory builder for tests of the flow: same contract, no tools, deterministic ids and digests."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from slipway.errors import ImageError
from slipway.images.base import BuiltImage, ImageBuilder, PushedImage, tag_part

INSTRUCTIONS = frozenset(
    [
        "FROM",
        "RUN",
        "CMD",
        "LABEL",
        "MAINTAINER",
        "EXPOSE",
        "ENV",
        "ADD",
        "COPY",
        "ENTRYPOINT",
        "VOLUME",
        "USER",
        "WORKDIR",
        "ARG",
        "ONBUILD",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "SHELL",
    ]
)
_CONTINUED = re.compile(r"\\\s*\n")


def _instructions(text: str) -> list[str]:
    """Pure; the keyword of each instruction (comments and continuation lines folded away)."""
    lines = _CONTINUED.sub(" ", text).splitlines()
    return [line.split()[0].upper() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def _tree_sha256(context: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in context.rglob("*") if p.is_file()):
        digest.update(path.relative_to(context).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class FakeBuilder(ImageBuilder):
    """Checks the Dockerfile's instructions, hashes the context; `pushed` maps tag refs to digests."""

    name = "fake"

    def __init__(self, *, unavailable_reason: str | None = None) -> None:
        self._reason = unavailable_reason
        self.images: dict[str, BuiltImage] = {}
        self.sizes: dict[str, int] = {}
        self.pushed: dict[str, str] = {}

    def available(self) -> str | None:
        """None unless constructed with a reason (to test the no-builder path)."""
        return self._reason

    def build(
        self, *, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Id = sha256 of Dockerfile, context files, build args and labels; ImageError on an unknown instruction."""
        if self._reason is not None:
            raise ImageError("build", self._reason)
        if not context.is_dir() or not dockerfile.is_file():
            raise ImageError("build", f"fake: missing context {context} or Dockerfile {dockerfile}")
        text = dockerfile.read_text()
        keywords = _instructions(text)
        unknown = [k for k in keywords if k not in INSTRUCTIONS]
        if not keywords or keywords[0] not in {"FROM", "ARG"} or unknown:
            detail = f"unknown instruction {unknown[0]}" if unknown else "no FROM instruction"
            raise ImageError("build", f"fake: {dockerfile.name}: {detail}")
        digest = hashlib.sha256()
        for part in (
            text,
            _tree_sha256(context),
            repr(sorted(build_args.items())),
            repr(sorted(labels.items())),
        ):
            digest.update(part.encode() + b"\0")
        image = BuiltImage(tag=tag, image_id=digest.hexdigest(), labels=dict(labels), builder=self.name)
        self.images[tag] = image
        self.sizes[image.image_id] = sum(p.stat().st_size for p in context.rglob("*") if p.is_file())
        return image

    def push(self, image: BuiltImage, *, repository: str, tls_verify: bool) -> PushedImage:
        """Digest = sha256 of the image id (a registry digest depends on content, not on the name)."""
        if image.image_id not in self.sizes:
            raise ImageError("push", f"fake: image {image.tag} not built here")
        remote = f"{repository}:{tag_part(image.tag)}"
        digest = "sha256:" + hashlib.sha256(image.image_id.encode()).hexdigest()
        self.pushed[remote] = digest
        return PushedImage(
            repository=repository, tag=remote, digest=digest, reference=f"{repository}@{digest}"
        )

    def size_bytes(self, image: BuiltImage) -> int:
        """Total bytes of the context files the image was built from."""
        if image.image_id not in self.sizes:
            raise ImageError("inspect", f"fake: image {image.tag} not built here")
        return self.sizes[image.image_id]

    def remove(self, image: BuiltImage) -> None:
        """Forgets the tag."""
        self.images.pop(image.tag, None)

    def server_command(
        self, image_id: str, *, name: str, port: int, env: dict[str, str], run_args: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """Raises ImageError("run"): the fake builder's images live in memory and cannot run."""
        raise ImageError("run", "the fake builder keeps images in memory: nothing can run them")
