"""The operations commands on a real state: SQLite MLflow written by real releases, the real local target.

Three releases register versions 1-3 and a flipped-label batch is rejected by the gate. Versions 1 and 3
are promoted the way the deploy stage promotes (registry alias, then the stable on the local target);
version 2 never is. Then the rollback flow runs through Prefect and the router answers with the old model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from flows.release import run_release
from flows.rollback import rollback

from slipway.config import PipelineConfig
from slipway.data.batch_io import write_batch
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import load_reference
from slipway.deploy.local import LocalTarget
from slipway.errors import DeployError
from slipway.ops.audit import read_records
from slipway.ops.context import open_context
from slipway.ops.history import release_history
from slipway.ops.rollback import RollbackRefused, registered_release, run_rollback
from slipway.ops.status import current_status
from slipway.ops.why import provenance
from slipway.registry.sqlite_reader import SqliteVersionReader
from slipway.settings import Settings
from tests.integration.conftest import REPO, flow_artifact_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODEL = "breast-cancer-mlp"


def _config(path: Path, *, target: str, ready_timeout_s: float = 60) -> Path:
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["deploy"] = {"target": target, "load_rps": 100, "ready_timeout_s": ready_timeout_s}
    path.write_text(yaml.safe_dump(raw))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, prefect_api: str) -> Iterator[dict[str, Any]]:
    root = tmp_path_factory.mktemp("ops")
    home = root / "home"
    registering = _config(root / "register.yaml", target="none")
    local = _config(root / "slipway.yaml", target="local")
    ref = load_reference(PipelineConfig().data)

    def batch(seed: int, corrupt: Corruption | None = None) -> str:
        path = root / f"batch-{seed}.csv"
        write_batch(make_batch(ref, rows=300, seed=seed, corrupt=corrupt), path)
        return str(path)

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIPWAY_HOME", str(home))
        mp.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SLIPWAY_MLFLOW_TRACKING_URI", raising=False)
        results = [run_release(data=batch(seed), config_path=str(registering)) for seed in (700, 701, 702)]
        assert [r["model_version"] for r in results] == ["1", "2", "3"], [r["reasons"] for r in results]
        flipped = run_release(data=batch(703, Corruption.flipped_labels), config_path=str(registering))
        assert flipped["decision"] == "rejected" and flipped["stage"] == "quality_gate"
        ctx = open_context(config_path=local)
        registry, target = ctx.registry(), LocalTarget(settings=Settings())
        serve = registered_release(registry, work_dir=ctx.settings.work_path(), cfg=ctx.cfg)
        for version in ("1", "3"):  # what the deploy stage does on promotion: alias, then the stable
            promoted = registry.promote(
                model_name=MODEL, version=version, reason=f"test promotion of {version}"
            )
            target.deploy_stable(serve(promoted), ready_timeout_s=60)
        try:
            yield {"home": home, "config": local, "root": root, "target": target}
        finally:
            target.stop_all()
            target.close()


def _champion(home: Path) -> str:
    from mlflow import MlflowClient

    uri = f"sqlite:///{home / 'mlflow.db'}"
    return str(
        MlflowClient(tracking_uri=uri, registry_uri=uri).get_model_version_by_alias(MODEL, "champion").version
    )


def _answered_by(target: LocalTarget) -> set[str]:
    """model_version of a few answers through the router."""
    url = target.router_url
    assert url is not None
    row = load_reference(PipelineConfig().data).holdout_xy()[0][0].tolist()
    with httpx.Client(base_url=url, timeout=5, trust_env=False) as client:
        return {client.post("/predict", json={"instances": [row]}).json()["model_version"] for _ in range(5)}


def test_status_history_and_why_read_the_real_state(world: dict[str, Any]) -> None:
    ctx = open_context(config_path=world["config"])
    status = current_status(ctx)
    assert (status.champion_version, status.previous_champion, status.champion_via) == ("3", "1", "promotion")
    assert status.champion_since and status.champion_since.endswith("+00:00")
    assert (status.deploy.stable_version, status.deploy.canary_version) == ("3", None)
    assert status.deploy.router_url and status.warnings == []

    reader = ctx.reader()
    assert isinstance(reader, SqliteVersionReader)  # the fast path reads what MLflow wrote
    entries = release_history(registry=reader, model_name=MODEL, limit=10)
    assert entries == release_history(registry=ctx.registry(), model_name=MODEL, limit=10)
    assert [(e.version, e.decision) for e in entries] == [
        (None, "rejected"),
        ("3", "promoted"),
        ("2", "registered"),
        ("1", "promoted"),
    ]
    assert entries[0].stage == "quality_gate" and "FAIL: accuracy" in entries[0].reason

    why = provenance(registry=reader, model_name=MODEL, version="2")
    assert why == provenance(registry=ctx.registry(), model_name=MODEL, version="2")
    assert len(why.sections["source"]["git commit"]) == 40
    assert why.sections["source"]["git dirty"] in ("true", "false")
    assert len(why.sections["data"]["data sha256"]) == 64
    assert why.sections["optimizer"]["artifact"].startswith("onnx/")
    assert why.sections["gates"]["quality gate"] == "passed"


def test_the_rollback_flow_serves_the_previous_champion_again(world: dict[str, Any]) -> None:
    home, target = world["home"], world["target"]
    state = rollback(
        reason="v3 answers slower than its canary showed", config_path=str(world["config"]), return_state=True
    )
    result = state.result()
    assert "rollback" in flow_artifact_keys(str(state.state_details.flow_run_id))

    assert (result["from_version"], result["to_version"], result["redeployed"]) == ("3", "1", True)
    assert _champion(home) == "1"
    assert target.state().stable is not None and target.state().stable.model_version == "1"
    assert _answered_by(target) == {"1"}
    registry = open_context(config_path=world["config"]).registry()
    for version in ("1", "3"):
        tags = registry.get_version(model_name=MODEL, version=version).tags
        assert tags["slipway.rollback.reason"] == "v3 answers slower than its canary showed"
        assert (tags["slipway.rollback.from"], tags["slipway.rollback.to"]) == ("3", "1")
        assert "prefect flow run" in tags["slipway.rollback.by"]
    [record] = read_records(home / "reports" / "audit.jsonl")
    assert (record.from_version, record.to_version, record.target) == ("3", "1", "local")


def test_reruns_are_no_ops_and_bad_targets_are_refused(world: dict[str, Any]) -> None:
    ctx = open_context(config_path=world["config"])
    for to in ("1", None):
        again = run_rollback(ctx, to_version=to, reason="retry", actor="ops")
        assert again.noop and not again.redeployed
    for to, message in (
        ("9", "version '9' of model breast-cancer-mlp does not exist"),
        ("2", "version 2 of model breast-cancer-mlp was never promoted"),
    ):
        with pytest.raises(RollbackRefused, match=message):
            run_rollback(ctx, to_version=to, reason="x", actor="ops")
    assert _champion(world["home"]) == "1"
    assert len(read_records(world["home"] / "reports" / "audit.jsonl")) == 1


def test_a_failed_redeploy_leaves_the_champion_serving_and_the_registry_as_it_was(
    world: dict[str, Any],
) -> None:
    impatient = _config(world["root"] / "impatient.yaml", target="local", ready_timeout_s=0.001)
    with pytest.raises(DeployError, match="champion stays version 1"):
        run_rollback(open_context(config_path=impatient), to_version="3", reason="roll forward", actor="ops")
    assert _champion(world["home"]) == "1"
    assert _answered_by(world["target"]) == {"1"}

    forward = run_rollback(
        open_context(config_path=world["config"]), to_version="3", reason="fixed", actor="ops"
    )
    assert (forward.from_version, forward.to_version) == ("1", "3")
    assert _champion(world["home"]) == "3" and _answered_by(world["target"]) == {"3"}


def test_already_champion_but_stopped_is_served_again(world: dict[str, Any]) -> None:
    target: LocalTarget = world["target"]
    target.stop_all()
    assert current_status(open_context(config_path=world["config"])).warnings  # says what to run

    again = run_rollback(
        open_context(config_path=world["config"]), to_version="3", reason="restart", actor="ops"
    )

    assert again.noop and again.redeployed and "served nothing: redeployed it" in again.message
    assert _answered_by(target) == {"3"}
    assert len(read_records(world["home"] / "reports" / "audit.jsonl")) == 2  # rollback + roll forward only
