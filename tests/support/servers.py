"""The team's servers for tests: `infra/dev/server.sh` (Prefect server + UI and MLflow server) on free
loopback ports, waited for, stopped with their whole process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from slipway.ports import free_port

START_TIMEOUT_S = 180.0


def wait_http(url: str, *, timeout_s: float, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Blocking; until `url` answers 200; AssertionError with the log's tail when the process dies or time runs out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"{url}: process exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1)
    raise AssertionError(f"{url}: not up after {timeout_s:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], *, grace_s: float = 30.0) -> None:
    """SIGTERM the process group (server.sh also stops MLflow), SIGKILL after `grace_s`."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def clean_env() -> dict[str, str]:
    """This process's env minus anything that would point the children at another API/registry/state."""
    drop = ("PREFECT_", "SLIPWAY_", "MLFLOW_TRACKING_URI")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


@dataclass(frozen=True)
class Servers:
    """A running Prefect server (API + UI) and MLflow server."""

    prefect_ui: str  # http://127.0.0.1:PORT
    mlflow: str  # http://127.0.0.1:PORT

    @property
    def api_url(self) -> str:
        """The Prefect API URL."""
        return f"{self.prefect_ui}/api"


@contextmanager
def team_servers(repo: Path, state: Path, *, env: dict[str, str]) -> Iterator[Servers]:
    """Blocking start (15-40 s); `infra/dev/server.sh` with its state under `state`; stopped on exit."""
    prefect_port, mlflow_port = free_port(), free_port()
    log = state / "server.log"
    state.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["bash", "infra/dev/server.sh"],
        cwd=repo,
        env={
            **env,
            "SLIPWAY_SERVER_HOME": str(state / "server"),
            "SLIPWAY_PREFECT_PORT": str(prefect_port),
            "SLIPWAY_MLFLOW_PORT": str(mlflow_port),
        },
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    servers = Servers(prefect_ui=f"http://127.0.0.1:{prefect_port}", mlflow=f"http://127.0.0.1:{mlflow_port}")
    try:
        wait_http(f"{servers.api_url}/health", timeout_s=START_TIMEOUT_S, proc=proc, log=log)
        wait_http(f"{servers.mlflow}/health", timeout_s=START_TIMEOUT_S, proc=proc, log=log)
        yield servers
    finally:
        stop(proc)
