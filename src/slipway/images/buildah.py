"""buildah backend: daemonless, rootful, explicit storage (`--root/--runroot`); overlay, else vfs."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from slipway.errors import ImageError
from slipway.images.base import BuiltImage, ImageBuilder, PushedImage, tag_part
from slipway.images.process import Runner, run_tool, subprocess_runner, tail

INSTALL_HINT = "install buildah (apt-get install buildah) and run as root"


class BuildahBuilder(ImageBuilder):
    """`buildah bud --isolation chroot --layers` into its own storage root; pushes with `--digestfile`.

    `secrets` (id -> file) are passed to every build as `--secret` (e.g. `pip-ca`, a CA bundle).
    """

    name = "buildah"

    def __init__(
        self,
        *,
        root: Path,
        runroot: Path,
        executable: str = "buildah",
        runner: Runner = subprocess_runner,
        build_timeout_s: float = 1800.0,
        secrets: Mapping[str, Path] | None = None,
    ) -> None:
        self._secrets = dict(secrets or {})
        self._root = root
        self._runroot = runroot
        self._exe = executable
        self._run = runner
        self._build_timeout_s = build_timeout_s
        self._driver: str | None = None
        self._reason: str | None = None

    def _storage(self, driver: str) -> tuple[Path, Path]:
        """One root never mixes drivers (buildah refuses a "database configuration mismatch")."""
        if driver == "overlay":
            return self._root, self._runroot
        return Path(f"{self._root}-{driver}"), Path(f"{self._runroot}-{driver}")

    def _probe(self) -> None:
        if self._driver is not None or self._reason is not None:
            return
        if shutil.which(self._exe) is None:
            self._reason = f"buildah not found on PATH: {INSTALL_HINT}"
            return
        if os.geteuid() != 0:
            self._reason = f"buildah here runs rootful with --root {self._root}: run as root ({INSTALL_HINT})"
            return
        failures = []
        for driver in ("overlay", "vfs"):
            root, runroot = self._storage(driver)
            argv = [self._exe, "--root", str(root), "--runroot", str(runroot), "--storage-driver", driver]
            done = self._run([*argv, "images", "--quiet"], 60.0)
            if done.returncode == 0:
                self._driver = driver
                return
            failures.append(f"{driver}: {tail(done.stderr, 2)}")
        self._reason = f"buildah cannot open its storage ({'; '.join(failures)})"

    @property
    def driver(self) -> str | None:
        """The storage driver in use (overlay, else vfs); None when buildah is unavailable."""
        self._probe()
        return self._driver

    @property
    def storage_root(self) -> Path:
        """The storage root in use (`<root>-vfs` when overlay does not work here)."""
        return self._storage(self.driver or "overlay")[0]

    def _cmd(self, *args: str) -> list[str]:
        self._probe()
        if self._driver is None:
            raise ImageError("build", self._reason or "buildah unavailable")
        root, runroot = self._storage(self._driver)
        return [
            self._exe,
            "--root",
            str(root),
            "--runroot",
            str(runroot),
            "--storage-driver",
            self._driver,
            *args,
        ]

    def available(self) -> str | None:
        """None when buildah runs here and its storage opens (overlay or vfs), else what to install or fix."""
        self._probe()
        return self._reason

    def has_image(self, reference: str) -> bool:
        """True when `reference` (name or id) is in this builder's storage; nothing is pulled."""
        done = self._run(
            self._cmd("inspect", "--type", "image", "--format", "{{.FromImageID}}", reference), 60.0
        )
        return done.returncode == 0

    def build(
        self, *, context: Path, dockerfile: Path, tag: str, build_args: dict[str, str], labels: dict[str, str]
    ) -> BuiltImage:
        """Blocking; `bud --layers --force-rm` (docker format: HEALTHCHECK survives); same inputs give the same id."""
        with tempfile.TemporaryDirectory(prefix="slipway-bud-") as tmp:
            iidfile = Path(tmp) / "iid"
            argv = self._cmd("bud", "--isolation", "chroot", "--layers", "--force-rm", "--format", "docker")
            argv += ["--file", str(dockerfile), "--tag", tag, "--iidfile", str(iidfile)]
            argv += [f"--build-arg={k}={v}" for k, v in sorted(build_args.items())]
            argv += [f"--label={k}={v}" for k, v in sorted(labels.items())]
            argv += [f"--secret=id={k},src={v}" for k, v in sorted(self._secrets.items())]
            run_tool(self._run, [*argv, str(context)], step="build", timeout_s=self._build_timeout_s)
            image_id = iidfile.read_text().strip().removeprefix("sha256:")
        return BuiltImage(tag=tag, image_id=image_id, labels=self._labels(image_id), builder=self.name)

    def _inspect(self, image_id: str) -> dict[str, object]:
        out = run_tool(
            self._run, self._cmd("inspect", "--type", "image", image_id), step="inspect", timeout_s=60.0
        )
        data = json.loads(out)
        if not isinstance(data, dict):
            raise ImageError("inspect", f"unexpected `buildah inspect` output for {image_id}")
        return data

    def _labels(self, image_id: str) -> dict[str, str]:
        config = self._inspect(image_id).get("Docker") or {}
        labels = (config.get("config") or {}).get("Labels") if isinstance(config, dict) else None
        return {str(k): str(v) for k, v in (labels or {}).items()}

    def push(self, image: BuiltImage, *, repository: str, tls_verify: bool) -> PushedImage:
        """Blocking; `buildah push --digestfile`; pushing the same image again gives the same digest."""
        remote = f"{repository}:{tag_part(image.tag)}"
        with tempfile.TemporaryDirectory(prefix="slipway-push-") as tmp:
            digestfile = Path(tmp) / "digest"
            argv = self._cmd(
                "push", f"--tls-verify={str(tls_verify).lower()}", "--digestfile", str(digestfile)
            )
            run_tool(self._run, [*argv, image.image_id, f"docker://{remote}"], step="push", timeout_s=900.0)
            digest = digestfile.read_text().strip()
        if not digest.startswith("sha256:"):
            raise ImageError("push", f"buildah wrote no sha256 digest for {remote} (got {digest!r})")
        return PushedImage(
            repository=repository, tag=remote, digest=digest, reference=f"{repository}@{digest}"
        )

    def size_bytes(self, image: BuiltImage) -> int:
        """Uncompressed size of all layers: the sum over the local manifest's layer sizes."""
        manifest = self._inspect(image.image_id).get("Manifest")
        layers = json.loads(manifest).get("layers", []) if isinstance(manifest, str) else []
        if not layers:
            raise ImageError(
                "inspect", f"image {image.image_id[:12]} ({image.tag}) has no layers in buildah storage"
            )
        return sum(int(layer["size"]) for layer in layers)

    def remove(self, image: BuiltImage) -> None:
        """`buildah rmi <tag>`; an image already gone is not an error."""
        done = self._run(self._cmd("rmi", image.tag), 120.0)
        if done.returncode != 0 and "image not known" not in done.stderr and "unknown" not in done.stderr:
            raise ImageError(
                "remove", f"`buildah rmi {image.tag}` exited {done.returncode}: {tail(done.stderr)}"
            )

    def server_command(
        self, image_id: str, *, name: str, port: int, env: dict[str, str], run_args: tuple[str, ...] = ()
    ) -> tuple[list[str], list[str]]:
        """`podman run` over this builder's storage (runc, cgroupfs, host network, read-only, uid 10001); needs podman."""
        from slipway.deploy.podman import PodmanRuntime

        self._probe()
        if self._driver is None:
            raise ImageError("run", self._reason or "buildah unavailable")
        if shutil.which("podman") is None:
            raise ImageError(
                "run", "podman not found on PATH: install podman (apt-get install podman) to run images"
            )
        root, runroot = self._storage(self._driver)
        podman = PodmanRuntime(root=root, runroot=runroot, storage_driver=self._driver, run_args=run_args)
        run = podman.run_command(image_ref=image_id, name=name, port=port, env=env)
        return run, [*podman.base(), "rm", "--force", "--ignore", "--time", "0", name]
