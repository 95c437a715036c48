"""The deploy stage on the local target: first release promoted, a good challenger canaried and promoted,
every `--canary-fault` kind rolled back with the champion still serving. Real processes, real router, and a
CPU hog beside them the whole time."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from flows.release import run_release

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import make_batch
from slipway.data.reference import load_reference
from slipway.deploy.local import LocalTarget
from slipway.settings import Settings
from tests.integration.conftest import REPO

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "breast-cancer-mlp"


@pytest.fixture(scope="module", autouse=True)
def cpu_hog() -> Iterator[None]:
    """A busy process on one of the 2 cores for the whole module: a team's nodes are loaded too, and the canary
    must still promote the good challenger and roll back every fault (the latency one included)."""
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        yield
    finally:
        hog.kill()
        hog.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    """One state folder for the module: a champion (version 1) serving on the local target."""
    root = tmp_path_factory.mktemp("canary")
    home = root / "home"
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["deploy"] = {"target": "local", "load_rps": 100}
    raw["canary"]["readiness_deadline_s"] = 15  # the never-ready case waits this long
    config = root / "slipway.yaml"
    config.write_text(yaml.safe_dump(raw))
    ref = load_reference(PipelineConfig().data)

    def batch(seed: int) -> Path:
        path = root / f"batch-{seed}.csv"
        write_batch(make_batch(ref, rows=300, seed=seed), path)
        return path

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIPWAY_HOME", str(home))
        mp.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
        first = run_release(data=str(batch(900)), config_path=str(config))
        try:
            yield {"home": home, "config": config, "batch": batch, "first": first}
        finally:
            LocalTarget(settings=Settings()).stop_all()


def _client(home: Path) -> Any:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _serving(home: Path) -> str | None:
    state = LocalTarget(state_dir=home / "deploy" / "local").state()
    return state.stable.model_version if state.stable else None


def test_the_first_release_is_promoted_as_the_stable_without_a_canary(world: dict[str, Any]) -> None:
    first = world["first"]
    assert first["decision"] == "promoted", first["reasons"]
    assert first["stage"] == "canary"
    assert first["deploy"]["reason"].startswith("first release: no champion to canary against")
    assert (
        str(_client(world["home"]).get_model_version_by_alias(MODEL, "champion").version)
        == first["model_version"]
    )
    assert _serving(world["home"]) == first["model_version"]


@pytest.mark.parametrize("fault", ["nan", "errors", "never-ready", "constant", "flip", "latency"])
def test_every_canary_fault_is_rolled_back_and_the_champion_keeps_serving(
    world: dict[str, Any], fault: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_HOME", str(world["home"]))
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
    client = _client(world["home"])
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)
    seed = 910 + ["nan", "errors", "never-ready", "constant", "flip", "latency"].index(fault)

    result = run_release(data=str(world["batch"](seed)), config_path=str(world["config"]), canary_fault=fault)

    assert result["decision"] == "rolled_back", result["reasons"]
    assert result["stage"] == "canary"
    assert result["deploy"]["stable_version"] == champion
    assert str(client.get_model_version_by_alias(MODEL, "champion").version) == champion
    mv = client.get_model_version(MODEL, result["model_version"])
    assert mv.tags["slipway.decision"] == "rejected" and mv.tags["slipway.rejected_at"] == "canary"
    assert _serving(world["home"]) == champion
    assert mv.tags["slipway.canary.result"] == "rolled_back"
    assert mv.tags["slipway.canary.stable_version"] == champion
    assert {"slipway/canary.json", "slipway/canary.png"} <= {
        a.path for a in client.list_artifacts(mv.run_id, "slipway")
    }
    assert LocalTarget(state_dir=world["home"] / "deploy" / "local").state().canary is None  # no orphan


def test_a_good_challenger_is_canaried_and_promoted(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLIPWAY_HOME", str(world["home"]))
    monkeypatch.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
    client = _client(world["home"])
    champion = str(client.get_model_version_by_alias(MODEL, "champion").version)

    result = run_release(data=str(world["batch"](950)), config_path=str(world["config"]))

    assert result["decision"] == "promoted", (
        result["reasons"][-3:],
        result["deploy"].get("canary", {}).get("policy", {}).get("shift_baseline"),
    )
    decisions = result["deploy"]["canary"]["decisions"]
    assert decisions and result["deploy"]["canary"]["peak_weight"] == 100
    mv = client.get_model_version_by_alias(MODEL, "champion")
    assert str(mv.version) == result["model_version"]
    assert mv.tags["slipway.previous_champion"] == champion
    assert mv.tags["slipway.canary.result"] == "promoted"
    assert int(mv.tags["slipway.canary.decisions"]) >= 3
    assert _serving(world["home"]) == result["model_version"]
