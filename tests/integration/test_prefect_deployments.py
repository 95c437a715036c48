"""The team path, for real: `make server` (Prefect server + MLflow server), `make worker` (a process worker),
then what the release workflow runs on a push (`infra/ci/release.sh`: deploy --all, run `release` for the
commit, wait, job summary). Checks the outcome through the Prefect API, the retrain schedule, the
one-release-at-a-time limit (queued, not lost) and a commit the worker's checkout does not have.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest

from slipway.ports import free_port
from tests.integration.conftest import REPO
from tests.support.servers import START_TIMEOUT_S, clean_env, stop, wait_http

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RUN_TIMEOUT_S = 600.0


@dataclass
class Team:
    """A running server + worker and the environment that points at them."""

    env: dict[str, str]
    api_url: str
    config: Path
    incoming: Path
    tmp: Path

    def run(self, *args: str, extra: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            cwd=REPO,
            env={**self.env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
        )


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, config_file_module: Callable[..., Path]) -> Iterator[Team]:
    tmp = tmp_path_factory.mktemp("team")
    prefect_port, mlflow_port = free_port(), free_port()
    api = f"http://127.0.0.1:{prefect_port}/api"
    base = {
        **clean_env(),
        "BIN": str(REPO / ".venv" / "bin"),
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    server_log = tmp / "server.log"
    server = subprocess.Popen(
        ["bash", "infra/dev/server.sh"],
        cwd=REPO,
        env={
            **base,
            "SLIPWAY_SERVER_HOME": str(tmp / "server"),
            "SLIPWAY_PREFECT_PORT": str(prefect_port),
            "SLIPWAY_MLFLOW_PORT": str(mlflow_port),
        },
        stdout=server_log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    worker: subprocess.Popen[bytes] | None = None
    try:
        wait_http(f"{api}/health", timeout_s=START_TIMEOUT_S, proc=server, log=server_log)
        wait_http(
            f"http://127.0.0.1:{mlflow_port}/health", timeout_s=START_TIMEOUT_S, proc=server, log=server_log
        )
        incoming = tmp / "incoming"
        incoming.mkdir()
        config = config_file_module(tmp, {"batches": {"location": str(incoming)}})
        env = {
            **base,
            "PREFECT_API_URL": api,
            "PREFECT_HOME": str(tmp / "client-home"),
            "SLIPWAY_HOME": str(tmp / "slipway-home"),
            "SLIPWAY_MLFLOW_TRACKING_URI": f"http://127.0.0.1:{mlflow_port}",
            "SLIPWAY_IMAGE_BUILDER": "fake",
            "SLIPWAY_WORKER_NAME": "test-worker",
            "SLIPWAY_REPO_DIR": str(REPO),  # the worker's checkout (release.sh demands it on GitHub)
        }
        worker_log = tmp / "worker.log"
        worker = subprocess.Popen(
            ["bash", "infra/dev/worker.sh"],
            cwd=REPO,
            env=env,
            stdout=worker_log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        yield Team(env=env, api_url=api, config=config, incoming=incoming, tmp=tmp)
    finally:
        if worker is not None:
            stop(worker)
        stop(server)


@pytest.fixture(scope="module")
def config_file_module() -> Callable[..., Path]:
    """Like the `config_file` fixture, module-scoped: the repo's slipway.yaml, target none, overrides merged."""
    import yaml

    def make(folder: Path, overrides: dict[str, Any]) -> Path:
        raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
        raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
        raw["deploy"] = {**raw.get("deploy", {}), "target": "none"}
        raw.update(overrides)
        path = folder / "slipway.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return make


def _batch(team: Team, name: str, seed: int) -> Path:
    from slipway.config import PipelineConfig
    from slipway.data.batch_io import write_batch
    from slipway.data.generate import make_batch
    from slipway.data.reference import load_reference

    path = team.incoming / name
    write_batch(make_batch(load_reference(PipelineConfig().data), rows=300, seed=seed), path)
    return path


def _head() -> str:
    return subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout.strip()


def _api(team: Team) -> Any:
    from prefect.client.orchestration import SyncPrefectClient

    return SyncPrefectClient(team.api_url)


def _artifact_keys(client: Any, run_id: UUID) -> set[str]:
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    arts = client.read_artifacts(
        artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[run_id]))
    )
    return {a.key for a in arts if a.key}


def _wait_final(client: Any, run_ids: list[UUID], *, timeout_s: float = RUN_TIMEOUT_S) -> list[Any]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [client.read_flow_run(r) for r in run_ids]
        if all(r.state is not None and r.state.is_final() for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"runs not final after {timeout_s} s: {[r.state.name for r in runs if r.state]}")


def test_a_push_shaped_run_deploys_releases_and_reports(team: Team) -> None:
    _batch(team, "batch-001.csv", seed=11)
    summary = team.tmp / "job-summary.md"
    commit = _head()
    proc = team.run(
        "bash",
        "infra/ci/release.sh",
        extra={
            "SLIPWAY_COMMIT": commit,
            "SLIPWAY_CONFIG_PATH": str(team.config),
            "SLIPWAY_SUMMARY_FILE": str(summary),
            "SLIPWAY_RELEASE_POLL_S": "1",
        },
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = summary.read_text()
    assert "registered" in text and "version 1" in text and commit in text, text
    with _api(team) as client:
        deployments = {d.name for d in client.read_deployments()}
        assert {"release", "retrain", "rollback", "optimize-gpu", "optimize-gpu-process"} <= deployments
        release_id = client.read_deployment_by_name("release/release").id
        [run] = [r for r in client.read_flow_runs() if r.deployment_id == release_id]
        assert run.state.name == "Completed" and run.parameters["commit"] == commit
        keys = _artifact_keys(client, run.id)
    # an artifact per stage, as a person sees them in the UI
    assert {
        "validation-report",
        "training-summary",
        "quality-gate",
        "optimization",
        "servability",
        "registration",
        "image",
        "release-decision",
        "release-summary",
    } <= keys, keys
    # the registered version carries the commit the push asked for, on the MLflow server
    from mlflow import MlflowClient

    mv = MlflowClient(team.env["SLIPWAY_MLFLOW_TRACKING_URI"]).get_model_version("breast-cancer-mlp", "1")
    assert mv.tags["slipway.requested_commit"] == commit
    assert mv.tags["slipway.git_commit"] == commit


def test_the_retrain_deployment_carries_its_daily_schedule(team: Team) -> None:
    with _api(team) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
    assert [(s.schedule.cron, s.active) for s in dep.schedules] == [("0 3 * * *", True)]  # type: ignore[union-attr]
    assert dep.parameters["release_deployment"] == "release/release"


def test_two_quick_pushes_run_one_at_a_time_and_neither_is_lost(team: Team) -> None:
    a, b = _batch(team, "batch-002.csv", seed=12), _batch(team, "batch-003.csv", seed=13)
    with _api(team) as client:
        dep = client.read_deployment_by_name("release/release")
        ids = [
            client.create_flow_run_from_deployment(
                dep.id, parameters={"data": str(p), "config_path": str(team.config)}
            ).id
            for p in (a, b)
        ]
        runs = _wait_final(client, ids)
        histories = [[s.name for s in client.read_flow_run_states(r.id)] for r in runs]
    assert [r.state.name for r in runs] == ["Completed", "Completed"], histories
    assert any("AwaitingConcurrencySlot" in h for h in histories), histories  # one waited for the other
    first, second = sorted(runs, key=lambda r: r.start_time)
    assert first.end_time <= second.start_time, (first.end_time, second.start_time)


def test_a_commit_the_worker_does_not_have_fails_the_run_with_the_reason(team: Team) -> None:
    _batch(team, "batch-004.csv", seed=14)
    proc = team.run(
        str(REPO / ".venv" / "bin" / "slipway"),
        "remote",
        "release",
        "--commit",
        "0" * 40,
        "--config-path",
        str(team.config),
        "--poll",
        "1",
        "--json",
    )
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    import json

    outcome = json.loads(proc.stdout.strip().splitlines()[-1])
    assert outcome["state"] == "Failed" and outcome["decision"] == "error"
    with _api(team) as client:
        run = client.read_flow_run(UUID(outcome["flow_run_id"]))
    message = run.state.message or ""
    assert run.state.name == "Failed"
    assert f"commit {'0' * 40}: the checkout that runs this release is at {_head()}" in message, message


def test_a_scheduled_retrain_releases_the_newest_batch_through_the_release_deployment(team: Team) -> None:
    newest = _batch(team, "batch-005.csv", seed=15)
    with _api(team) as client:
        dep = client.read_deployment_by_name("retrain/retrain")
        run_id = client.create_flow_run_from_deployment(
            dep.id, parameters={"config_path": str(team.config)}
        ).id
        [run] = _wait_final(client, [run_id])
        assert run.state.name == "Completed", run.state.message
        keys = _artifact_keys(client, run_id)
        releases = [
            r
            for r in client.read_flow_runs()
            if r.parent_task_run_id is not None and r.parameters.get("data") == str(newest)
        ]
    assert "retrain-plan" in keys
    assert [r.state.name for r in releases] == ["Completed"]  # the release ran as its own deployment's run
