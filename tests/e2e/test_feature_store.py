"""The Feast example (`examples/breast-cancer-feast`) released with the CLI on both online stores, as a team
would: entity batches joined point-in-time with the feature service's features, the feature_consistency gate
passed and the model promoted with the service's lineage; then one feature written differently online (a
skewed materialization) and the next release rejected at feature_consistency naming entity, feature and
both values, the champion untouched."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.e2e.test_examples import FAST, cli, release
from tests.support.feast_example import copy_example
from tests.support.redis import redis_server

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

# one feature transformed differently on the online path: x1.1, written a second after each patient's last visit
SKEW = """
import sys
from pathlib import Path
import numpy as np, pandas as pd
from slipway.config import load_config
from slipway.features.factory import make_feature_store
from slipway.settings import Settings
store = make_feature_store(load_config(Path("slipway.yaml")), settings=Settings())
visits = pd.read_parquet("feature_repo/data/measurements.parquet")
latest = visits.sort_values("event_timestamp").groupby("patient_id").tail(1).copy()
latest["mean_texture"] = (latest["mean_texture"] * np.float32(1.1)).astype(np.float32)
latest["event_timestamp"] = latest["event_timestamp"] + pd.Timedelta(seconds=1)
store.feast.write_to_online_store("tumor_means", latest)
"""


@pytest.fixture(params=["sqlite", "redis"])
def project(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    folder = tmp_path / "breast-cancer-feast"
    copy_example(folder, whole=True)
    config = yaml.safe_load((folder / "slipway.yaml").read_text())
    for section, values in FAST.items():
        config[section] = {**config.get(section, {}), **values}
    (folder / "slipway.yaml").write_text(yaml.safe_dump(config))
    if request.param == "sqlite":
        yield folder, {}
        return
    with redis_server(tmp_path / "redis") as url:
        yield folder, {"SLIPWAY_FEATURES_ONLINE_STORE": url}


def test_a_feast_project_trains_from_its_features_and_a_skewed_store_is_rejected(
    project: tuple[Path, dict[str, str]], api: str
) -> None:
    folder, env = project
    try:
        code, first = release(folder, api, 1, env=env)
        assert (code, first["decision"]) == (0, "promoted"), first["reasons"]
        reasons = " ".join(first["reasons"])  # type: ignore[arg-type]
        assert "feature skew: consistent" in reasons
        why = json.loads(cli(folder, api, "why", "1", "--json", env=env).stdout)
        features = why["sections"]["features"]
        assert features["service"] == "tumor_diagnosis" and len(features["service sha256"]) == 64
        assert set(json.loads(features["view versions"])) == {"tumor_means", "tumor_extremes"}
        _answers_by_entity(folder, api, env)

        skew = subprocess.run(
            [sys.executable, "-c", SKEW], cwd=folder, env=_env(folder, env), capture_output=True, text=True
        )
        assert skew.returncode == 0, skew.stderr[-3000:]
        code, second = release(folder, api, 2, env=env)
        assert (code, second["decision"], second["stage"]) == (1, "rejected", "feature_consistency")
        named = [r for r in second["reasons"] if "mean_texture online" in r]  # type: ignore[union-attr]
        assert named and "patient_id=" in named[0] and "!= historical" in named[0], second["reasons"]
        status = json.loads(cli(folder, api, "status", "--json", env=env).stdout)
        assert status["champion_version"] == "1"
        assert cli(folder, api, "features", "skew", env=env).returncode == 1  # the CLI sees the same skew
    finally:
        cli(folder, api, "deploy", "stop", env=env)


def _answers_by_entity(folder: Path, api: str, env: dict[str, str]) -> None:
    """The champion behind the local router answers patients by id from the online store: a known patient as the
    same prediction as its feature vector, an unknown one as a 404 row naming the key."""
    import httpx
    import pandas as pd

    status = json.loads(cli(folder, api, "status", "--json", env=env).stdout)
    url = status["deploy"]["router_url"]
    visits = pd.read_parquet(folder / "feature_repo" / "data" / "measurements.parquet")
    patient = int(visits["patient_id"].iloc[0])
    unknown = int(visits["patient_id"].max()) + 1000
    resp = httpx.post(
        f"{url}/predict", json={"entities": [{"patient_id": patient}, {"patient_id": unknown}]}, timeout=30
    )
    assert resp.status_code == 200, resp.text
    found, missing = resp.json()["predictions"]
    assert missing == {"error": "entity not found", "status": 404, "key": {"patient_id": unknown}}
    assert set(found["probabilities"]) == {"benign", "malignant"}
    assert sum(found["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    latest = visits[visits["patient_id"] == patient].sort_values("event_timestamp").iloc[-1]
    with_vector = httpx.post(f"{url}/predict", json={"instances": [_vector(folder, latest)]}, timeout=30)
    assert with_vector.status_code == 200, with_vector.text
    assert with_vector.json()["predictions"][0]["probabilities"] == pytest.approx(
        found["probabilities"], abs=1e-5
    )


def _vector(folder: Path, visit: object) -> dict[str, float]:
    """The model's inputs for one visit row, by the names the served bundle reads."""
    bundles = sorted((folder / ".slipway").rglob("model.json"))
    meta = json.loads(bundles[-1].read_text())
    return {name: float(visit[name]) for name in meta["features"]}  # type: ignore[index]


def _env(folder: Path, extra: dict[str, str]) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    return base | {"SLIPWAY_HOME": str(folder / ".slipway")} | extra
