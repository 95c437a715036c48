"""Integration fixtures: one real Prefect API (test harness) per session, a state folder per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from slipway.data.batch_io import write_batch
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import Reference

REPO = Path(__file__).resolve().parents[2]

os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "90")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")


@pytest.fixture(scope="session")
def prefect_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A throwaway Prefect API server (fresh SQLite) and result store for the whole session; yields its URL.

    The result store (where cached task results live) must be fresh too: Prefect's default,
    ~/.prefect/storage, outlives test sessions and would turn a first run into a cache hit.
    """
    from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    storage = tmp_path_factory.mktemp("prefect-results")
    with (
        temporary_settings({PREFECT_LOCAL_STORAGE_PATH: storage}),
        prefect_test_harness(server_startup_timeout=None),
    ):
        yield str(PREFECT_API_URL.value())


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, prefect_api: str) -> Path:
    """A fresh Slipway state folder (MLflow SQLite, GX, reports) for one test."""
    path = tmp_path / "slipway-home"
    monkeypatch.setenv("SLIPWAY_HOME", str(path))
    # flow tests build images with the in-memory builder; test_release_image.py uses the real one
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
    return path


@pytest.fixture()
def batch(tmp_path: Path, ref: Reference) -> Callable[..., Path]:
    """Write a generated batch CSV: batch(seed, corrupt=None, rows=300) -> path."""

    def make(seed: int, corrupt: Corruption | None = None, rows: int = 300) -> Path:
        path = tmp_path / f"batch-{seed}-{corrupt.value if corrupt else 'clean'}.csv"
        write_batch(make_batch(ref, rows=rows, seed=seed, corrupt=corrupt), path)
        return path

    return make


@pytest.fixture()
def config_file(tmp_path: Path) -> Callable[..., Path]:
    """Write a copy of the repo's slipway.yaml with overrides merged in: config_file(name, {...}) -> path."""

    def make(name: str = "slipway.yaml", overrides: dict[str, Any] | None = None) -> Path:
        raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
        raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
        # flow tests stop after the image; tests/integration/test_release_canary.py runs the deploy stage
        raw["deploy"] = {**raw.get("deploy", {}), "target": "none"}
        for section, values in (overrides or {}).items():
            if isinstance(values, dict):
                raw.setdefault(section, {}).update(values)
            else:
                raw[section] = values
        path = tmp_path / name
        path.write_text(yaml.safe_dump(raw))
        return path

    return make


@pytest.fixture()
def mlflow_client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def flow_artifact_keys(flow_run_id: str) -> set[str]:
    """Keys of the artifacts a flow run (and its tasks) created, read back through the API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        arts = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {a.key for a in arts if a.key}
