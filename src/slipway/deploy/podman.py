"""Podman mode of the local target: a server is a foreground `podman run --rm` of the release's image BY DIGEST.

The tracked pid is the `podman run` process itself (in its own session, so it outlives the
orchestrator); SIGTERM to it is proxied to the container (`--init` forwards it to the server, which
drains), and `podman rm -f NAME` afterwards guarantees that no container is left even when the
`podman run` process was SIGKILLed. The container name is deterministic per deployment, role and port.
"""

from __future__ import annotations

import contextlib
import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from slipway.errors import DeployError
from slipway.images.base import container_env

if TYPE_CHECKING:
    from slipway.config import PodmanConfig

REMOVE_TIMEOUT_S = 60.0
SERVER_UID = "10001"


@dataclass(frozen=True)
class PodmanRuntime:
    """This machine's podman invocation (global flags) and the pull/run policy of the local target."""

    binary: str = "podman"
    root: Path | None = None
    runroot: Path | None = None
    storage_driver: str | None = None
    runtime: str | None = "runc"
    cgroup_manager: str | None = "cgroupfs"
    tls_verify: bool = True
    pull_timeout_s: float = 300.0
    run_args: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def from_config(cls, cfg: PodmanConfig, *, tls_verify_default: bool) -> PodmanRuntime:
        """Pure; the runtime of `deploy.local.podman` (tls_verify unset: the settings' registry default)."""
        return cls(
            binary=cfg.binary,
            root=cfg.root,
            runroot=cfg.runroot,
            storage_driver=cfg.storage_driver,
            runtime=cfg.runtime,
            cgroup_manager=cfg.cgroup_manager,
            tls_verify=tls_verify_default if cfg.tls_verify is None else cfg.tls_verify,
            pull_timeout_s=cfg.pull_timeout_s,
            run_args=tuple(cfg.run_args),
        )

    def base(self) -> list[str]:
        """Pure; `podman` plus the global flags (storage, storage driver, runtime, cgroup manager, file events)."""
        cmd = [self.binary]
        if self.root is not None:
            cmd += ["--root", str(self.root)]
        if self.runroot is not None:
            cmd += ["--runroot", str(self.runroot)]
        if self.storage_driver:
            cmd += ["--storage-driver", self.storage_driver]
        if self.runtime:
            cmd += ["--runtime", self.runtime]
        if self.cgroup_manager:
            cmd += ["--cgroup-manager", self.cgroup_manager]
        return [*cmd, "--events-backend", "file"]

    def pull(self, image_ref: str) -> None:
        """Blocking up to pull_timeout_s; idempotent (a present digest pulls nothing); DeployError naming the image."""
        cmd = [*self.base(), "pull", "--quiet", f"--tls-verify={str(self.tls_verify).lower()}", image_ref]
        try:
            done = subprocess.run(
                cmd, capture_output=True, text=True, timeout=self.pull_timeout_s, check=False
            )
        except subprocess.TimeoutExpired:
            raise DeployError(
                f"local target (podman): pulling {image_ref} took longer than {self.pull_timeout_s:g} s "
                "(deploy.local.podman.pull_timeout_s)"
            ) from None
        except OSError as exc:
            raise DeployError(f"local target (podman): cannot run {self.binary}: {exc}") from None
        if done.returncode != 0:
            raise DeployError(
                f"local target (podman): pulling {image_ref} failed (exit {done.returncode}): "
                f"{done.stderr.strip()[-500:]}"
            )

    def run_command(self, *, image_ref: str, name: str, port: int, env: dict[str, str]) -> list[str]:
        """Pure; the foreground `podman run` of one server on 127.0.0.1:`port` (host network, read-only, uid 10001)."""
        # --no-healthcheck: readiness is the target's own /readyz wait (podman's timers need systemd)
        cmd = [*self.base(), "run", "--rm", "--replace", "--name", name, "--pull", "never", "--init"]
        cmd += ["--no-healthcheck"]
        cmd += ["--network", "host", "--read-only", "--tmpfs", "/tmp", "--user", SERVER_UID, *self.run_args]
        return [*cmd, *container_env(env, port=port), image_ref]


def container_name(*, state_dir: Path, role: str, port: int) -> str:
    """Pure; `slipway-<deployment hash>-<role>-<port>`: one deployment's containers share the prefix."""
    return f"{container_prefix(state_dir)}{role}-{port}"


def container_prefix(state_dir: Path) -> str:
    """Pure; the name prefix of every container of the deployment kept in `state_dir`."""
    digest = hashlib.sha256(str(state_dir.expanduser().resolve()).encode()).hexdigest()[:10]
    return f"slipway-{digest}-"


def remove_container(podman: list[str], name: str) -> None:
    """Blocking (seconds); idempotent; `podman rm -f --ignore NAME` (kills it if it still runs)."""
    # a failure here is seen by whoever lists containers next; nothing better to do while stopping
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        subprocess.run(
            [*podman, "rm", "--force", "--ignore", "--time", "0", name],
            capture_output=True,
            timeout=REMOVE_TIMEOUT_S,
            check=False,
        )
