"""Docker backend: the `docker` CLI against a running engine (BuildKit or classic)."""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from slipway.errors import ImageError
from slipway.images.base import BuiltImage, ImageBuilder, PushedImage, container_env, tag_part
from slipway.images.process import Runner, run_tool, subprocess_runner, tail


class DockerBuilder(ImageBuilder):
    """`docker build` / `docker push`; the digest comes from the image's RepoDigests after the push.

    `secrets` (id -> file) are passed to every build as `--secret` (BuildKit, the default since Docker 23).
    TLS is the engine's business: `tls_verify=False` needs the registry in the daemon's
    `insecure-registries` (loopback registries, 127.0.0.0/8, are insecure by default).
    """

    name = "docker"

    def __init__(
        self,
        *,
        executable: str = "docker",
        runner: Runner = subprocess_runner,
        build_timeout_s: float = 1800.0,
        secrets: Mapping[str, Path] | None = None,
    ) -> None:
        self._secrets = dict(secrets or {})
        self._exe = executable
        self._run = runner
        self._build_timeout_s = build_timeout_s
        self._reason: str | None = None
        self._checked = False

    def available(self) -> str | None:
        """None when the docker CLI finds a daemon that answers `docker info`; a CLI alone is not enough."""
        if self._checked:
            return self._reason
        self._checked = True
        if shutil.which(self._exe) is None:
            self._reason = (
                "docker not found on PATH: install Docker Engine, or buildah (apt-get install buildah)"
            )
            return self._reason
        try:
            done = self._run([self._exe, "info", "--format", "{{.ServerVersion}}"], 15.0)
        except Exception as exc:  # a hung socket is the same answer as no daemon
            self._reason = f"docker daemon does not answer `docker info` ({type(exc).__name__})"
            return self._reason
        if done.returncode != 0 or not done.stdout.strip():
            self._reason = (
                "docker CLI present but no daemon answers `docker info` "
                f"({tail(done.stderr, 1) or 'no server version'}): start dockerd, or use buildah (apt-get install buildah)"
            )
        return self._reason

    def build(
        self, *, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Blocking; `docker build` with the engine's layer cache; same inputs give the same id."""
        with tempfile.TemporaryDirectory(prefix="slipway-build-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = [self._exe, "build", "--file", str(dockerfile), "--tag", tag, "--iidfile", str(iidfile)]
            argv += [f"--build-arg={k}={v}" for k, v in sorted(build_args.items())]
            argv += [f"--label={k}={v}" for k, v in sorted(labels.items())]
            argv += [f"--secret=id={k},src={v}" for k, v in sorted(self._secrets.items())]
            run_tool(self._run, [*argv, str(context)], step="build", timeout_s=self._build_timeout_s)
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
        return BuiltImage(tag=tag, image_id=image_id, labels=self._labels(image_id), builder=self.name)

    def _inspect(self, ref: str, template: str) -> str:
        argv = [self._exe, "image", "inspect", "--format", template, ref]
        return run_tool(self._run, argv, step="inspect", timeout_s=60.0).strip()

    def _labels(self, image_id: str) -> dict[str, str]:
        labels = json.loads(self._inspect(image_id, "{{json .Config.Labels}}")) or {}
        return {str(k): str(v) for k, v in labels.items()}

    def push(self, image: BuiltImage, *, repository: str, tls_verify: bool) -> PushedImage:
        """Blocking; tags `repository:<tag>`, pushes, reads the digest from RepoDigests."""
        remote = f"{repository}:{tag_part(image.tag)}"
        run_tool(self._run, [self._exe, "tag", image.image_id, remote], step="push", timeout_s=60.0)
        run_tool(self._run, [self._exe, "push", remote], step="push", timeout_s=900.0)
        repo_digests = json.loads(self._inspect(remote, "{{json .RepoDigests}}")) or []
        pinned = [d for d in repo_digests if str(d).startswith(f"{repository}@sha256:")]
        if not pinned:
            raise ImageError(
                "inspect", f"no RepoDigest for {repository} after pushing {remote}: {repo_digests}"
            )
        digest = str(pinned[0]).split("@", 1)[1]
        return PushedImage(
            repository=repository, tag=remote, digest=digest, reference=f"{repository}@{digest}"
        )

    def size_bytes(self, image: BuiltImage) -> int:
        """`docker image inspect` .Size (uncompressed, all layers)."""
        return int(self._inspect(image.image_id, "{{.Size}}"))

    def remove(self, image: BuiltImage) -> None:
        """`docker rmi <tag>`; an image already gone is not an error."""
        done = self._run([self._exe, "rmi", image.tag], 120.0)
        if done.returncode != 0 and "No such image" not in done.stderr:
            raise ImageError(
                "remove", f"`docker rmi {image.tag}` exited {done.returncode}: {tail(done.stderr)}"
            )

    def server_command(
        self, image_id: str, *, name: str, port: int, env: dict[str, str], run_args: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """`docker run` in the foreground on the host network (read-only, uid 10001); needs a daemon."""
        reason = self.available()
        if reason is not None:
            raise ImageError("run", reason)
        cmd = [self._exe, "run", "--rm", "--name", name, "--init", "--network", "host", "--read-only"]
        cmd += ["--tmpfs", "/tmp", "--user", "10001", *run_args, *container_env(env, port=port), image_id]
        return cmd, [self._exe, "rm", "--force", name]
