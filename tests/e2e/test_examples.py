"""The example projects of `examples/` (one per task, made by `slipway init`) released with the CLI, as a
team would: the first release promoted, a healthy second release canaried and promoted, a `flip` canary
rolled back while the champion keeps serving. The canary policy is shortened for the test (fewer
samples, shorter windows, more load): the decisions are the same functions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SLIPWAY = str(Path(sys.executable).parent / "slipway")
EXAMPLES = ["tumor-binary", "wine-multiclass", "diabetes-regression"]
FAST = {
    "canary": {
        "interval_s": 3,
        "min_samples_per_arm": 600,
        "shadow_intervals": 1,
        "steps": [25, 50, 100],
        "deadline_s": 240,
        "readiness_deadline_s": 60,
    },
    "deploy": {"target": "local", "load_rps": 250},
    "optimize": {"bench": {"warmup": 5, "rounds": 3, "iterations": 10, "load_repeats": 1}},
}

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def project(name: str, tmp: Path) -> Path:
    """A copy of the example with the fast canary policy (the example itself stays as init wrote it)."""
    folder = tmp / name
    shutil.copytree(REPO / "examples" / name, folder)
    config = yaml.safe_load((folder / "slipway.yaml").read_text())
    for section, values in FAST.items():
        config[section] = {**config.get(section, {}), **values}
    (folder / "slipway.yaml").write_text(yaml.safe_dump(config))
    return folder


def cli(
    folder: Path, api: str, *args: str, timeout: int = 600, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "MLFLOW_", "SLIPWAY_"))}
    base |= {
        "PREFECT_API_URL": api,
        "SLIPWAY_HOME": str(folder / ".slipway"),
        "SLIPWAY_IMAGE_BUILDER": "fake",
    }
    return subprocess.run(
        [SLIPWAY, *args],
        cwd=folder,
        env=base | (env or {}),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def release(
    folder: Path, api: str, seed: int, *extra: str, env: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    batch = f"data/incoming/batch-{seed}.csv"
    made = cli(folder, api, "data", "batch", "--out", batch, "--seed", str(seed), env=env)
    assert made.returncode == 0, made.stderr
    proc = cli(folder, api, "release", "--data", batch, "--json", *extra, env=env)
    assert proc.stdout.strip(), proc.stderr[-3000:]
    return proc.returncode, json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_example_project_promotes_canaries_and_rolls_back_a_flip(
    name: str, api: str, tmp_path: Path
) -> None:
    folder = project(name, tmp_path)
    try:
        code, first = release(folder, api, 1)
        assert (code, first["decision"], first["model_version"]) == (0, "promoted", "1"), first["reasons"]
        code, second = release(folder, api, 2)
        assert (code, second["decision"]) == (0, "promoted"), second["reasons"]
        assert second["deploy"]["previous_champion"] == "1"  # type: ignore[index]
        code, flipped = release(folder, api, 3, "--canary-fault", "flip")
        assert (code, flipped["decision"], flipped["stage"]) == (1, "rolled_back", "canary"), flipped[
            "reasons"
        ]
        status = json.loads(cli(folder, api, "status", "--json").stdout)
        assert status["champion_version"] == "2" and status["deploy"]["stable_version"] == "2"
        # the champion keeps serving: the router answers with it, in the task's answer shape and the data's labels
        router = status["deploy"]["router_url"]
        assert router, status["deploy"]
        model = httpx.get(f"{router}/model", timeout=10).json()
        instances = pd.read_csv(folder / "data" / "incoming" / "batch-3.csv")[model["features"]].head(5)
        answer = httpx.post(
            f"{router}/predict", json={"instances": instances.to_numpy().tolist()}, timeout=10
        )
        assert answer.status_code == 200 and answer.json()["model_version"] == "2"
        assert len(answer.json()["predictions"]) == len(instances) == 5
        for row in answer.json()["predictions"]:
            if model["task"] == "regression":
                assert set(row) == {"value"} and isinstance(row["value"], float)
            else:
                assert row["label"] in model["classes"] and list(row["probabilities"]) == [
                    str(c) for c in model["classes"]
                ]
        monitor_the_champion(folder, api, features=model["features"], task=model["task"])
    finally:
        cli(folder, api, "deploy", "stop")


def monitor_the_champion(folder: Path, api: str, *, features: list[str], task: str) -> None:
    """`slipway monitor` on the champion: a fresh sample of the data is no drift (exit 0), the same rows with
    one column shifted by one standard deviation are drift naming that column (exit 1); the served traffic's
    logs are judged (exit 0 or 1, never an error); `slipway why` names what triggered the champion."""
    fresh = folder / "fresh.csv"
    assert (
        cli(folder, api, "data", "batch", "--out", str(fresh), "--seed", "11", "--rows", "1000").returncode
        == 0
    )
    ok = cli(folder, api, "monitor", "--data", str(fresh), "--json")
    assert ok.returncode == 0, ok.stdout[-3000:] + ok.stderr[-3000:]
    summary = json.loads(ok.stdout)
    assert summary["status"] == "ok" and summary["champion_version"] == "2"
    assert Path(summary["files"]["html"]).is_file() and Path(summary["files"]["summary"]).is_file()
    frame = pd.read_csv(fresh)
    column = features[len(features) // 2]
    frame[column] = frame[column] + frame[column].std()
    frame.to_csv(shifted := folder / "shifted.csv", index=False)
    drift = cli(folder, api, "monitor", "--data", str(shifted), "--json")
    assert drift.returncode == 1, drift.stdout[-3000:] + drift.stderr[-3000:]
    found = json.loads(drift.stdout)
    assert column in found["drifted_columns"], found["reasons"]
    assert set(found["drifted_columns"]) <= {column, "prediction"}, found["reasons"]
    if task == "binary":  # the canaries' traffic was logged by every server (the local file sink)
        logged = cli(folder, api, "monitor", "--since", "1h", "--json")
        assert logged.returncode in (0, 1), logged.stdout[-3000:] + logged.stderr[-3000:]
        assert json.loads(logged.stdout)["window"]["rows"] >= 100
    why = json.loads(cli(folder, api, "why", "2", "--json").stdout)
    assert why["sections"]["source"]["trigger"] == "local", why  # released from the CLI, no deployment
