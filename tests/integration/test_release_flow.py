"""The release flow under a real Prefect API, real MLflow (SQLite) and real Great Expectations."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flows.release import run_release

from slipway.data.generate import Corruption
from tests.integration.conftest import flow_artifact_keys

pytestmark = [pytest.mark.integration, pytest.mark.slow]

LINEAGE_KEYS = {
    "slipway.git_commit",
    "slipway.git_dirty",
    "slipway.data_sha256",
    "slipway.suite_sha256",
    "slipway.training_config_sha256",
    "slipway.training_code_sha256",
    "slipway.version.python",
    "slipway.version.torch",
    "slipway.version.onnx",
}


def run(data: Path, config: Path, model_uri: str | None = None) -> dict[str, Any]:
    return run_release(data=str(data), model_uri=model_uri, config_path=str(config))


def test_first_release_registers_a_challenger_with_lineage(home, batch, config_file, mlflow_client) -> None:
    result = run(batch(101), config_file())

    assert result["decision"] == "registered", result["reasons"]
    assert result["stage"] == "register"
    assert result["model_version"] == "1"
    assert result["reasons"][0].startswith("first release")
    mv = mlflow_client.get_model_version_by_alias("breast-cancer-mlp", "challenger")
    assert str(mv.version) == "1"
    assert set(mv.tags) >= LINEAGE_KEYS
    assert mv.tags["slipway.data_sha256"] == result["lineage"]["slipway.data_sha256"]
    assert mv.tags["slipway.git_dirty"] in {"true", "false", "unknown"}
    assert mv.tags["slipway.trigger"] == "local"  # a flow run of no deployment
    # the drift reference `slipway monitor` reads: the batch's rows (all 300 here) and the model's labels on them
    import numpy as np

    from slipway.monitoring.reference import REFERENCE_DOC, from_bytes

    local = mlflow_client.download_artifacts(mv.run_id, REFERENCE_DOC, str(home))
    reference = from_bytes(Path(local).read_bytes(), source=REFERENCE_DOC)
    assert reference.x.shape == (300, 30) and set(np.unique(reference.predictions)) <= {"0", "1"}
    with pytest.raises(Exception, match=r"not found|does not exist|alias"):
        mlflow_client.get_model_version_by_alias("breast-cancer-mlp", "champion")
    run_data = mlflow_client.get_run(mv.run_id).data
    assert run_data.metrics["holdout_accuracy"] == pytest.approx(result["metrics"]["accuracy"])
    assert {
        "validation-report",
        "data-docs",
        "training-summary",
        "quality-gate",
        "onnx-parity",
        "optimization",
        "registration",
        "tensorrt",
        "release-decision",
    } <= flow_artifact_keys(result["flow_run_id"])
    assert result["data_docs"].startswith("file://")
    assert Path(result["data_docs"].removeprefix("file://")).is_file()
    assert any((home / "reports").glob("release-*.json"))


@pytest.mark.parametrize(
    ("kind", "expectation", "column_index"),
    [
        (Corruption.missing_column, "expect_table_columns_to_match_set", None),
        (Corruption.nulls, "expect_column_values_to_not_be_null", 0),
        (Corruption.out_of_range, "expect_column_values_to_be_between", 1),
        (Corruption.bad_labels, "expect_column_values_to_be_in_set", "label"),
        (Corruption.wrong_type, "expect_column_values_to_be_in_type_list", 2),
        (Corruption.empty, "expect_table_row_count_to_be_between", None),
        (Corruption.duplicates, "expect_compound_columns_to_be_unique", None),
    ],
)
def test_every_corruption_stops_the_release_before_training(
    kind, expectation, column_index, home, batch, config_file, mlflow_client, ref
) -> None:
    result = run(batch(200, kind), config_file())

    assert result["decision"] == "rejected"
    assert result["stage"] == "validation"
    assert "training" not in result["timings_s"]
    named = [r for r in result["reasons"] if r.startswith(expectation)]
    assert named, result["reasons"]
    if column_index is not None:
        column = ref.label if column_index == "label" else ref.features[column_index]
        assert any(f"[{column}]" in r for r in named), named
    assert mlflow_client.search_registered_models() == []
    assert "validation-report" in flow_artifact_keys(result["flow_run_id"])


def test_label_flipped_model_is_rejected_by_the_gate(home, batch, config_file, mlflow_client) -> None:
    result = run(batch(300, Corruption.flipped_labels), config_file())

    assert result["decision"] == "rejected"
    assert result["stage"] == "quality_gate"
    assert any(r.startswith("FAIL: accuracy") for r in result["reasons"])
    assert result["metrics"]["accuracy"] < 0.5
    assert mlflow_client.search_model_versions("name='breast-cancer-mlp'") == []
    rejected = mlflow_client.get_run(result["mlflow_run_id"])
    assert rejected.data.tags["slipway.decision"] == "rejected"
    assert rejected.data.tags["slipway.rejected_at"] == "quality_gate"


def test_challenger_is_compared_with_the_champion(home, batch, config_file, mlflow_client) -> None:
    config = config_file()
    first = run(batch(401), config)
    mlflow_client.set_registered_model_alias("breast-cancer-mlp", "champion", first["model_version"])

    second = run(batch(402), config)
    assert second["decision"] == "registered", second["reasons"]
    assert second["champion_version"] == "1"
    assert second["reasons"][0] == "compared with champion version 1 on the same holdout"
    assert any("champion" in r and r.startswith("ok: accuracy") for r in second["reasons"])

    # a weak model that clears relaxed floors must still lose against the strong champion
    weak = config_file(
        "weak.yaml",
        {
            "training": {"params": {"epochs": 1, "lr": 0.00001, "hidden": [4]}},
            "quality_gate": {
                "thresholds": {"accuracy": 0.0},
                "max_regression": {"accuracy": 0.0, "roc_auc": 0.0},
            },
        },
    )
    third = run(batch(403), weak)
    assert third["decision"] == "rejected", third["reasons"]
    assert any(r.startswith("FAIL:") and "champion" in r for r in third["reasons"])
    assert str(mlflow_client.get_model_version_by_alias("breast-cancer-mlp", "champion").version) == "1"
    assert str(mlflow_client.get_model_version_by_alias("breast-cancer-mlp", "challenger").version) == "2"


def test_stages_cache_on_content_and_miss_on_any_change(home, batch, config_file, tmp_path) -> None:
    # training code lives in a module of this test, so that changing its source is possible
    code = tmp_path / "mytrain_cache.py"
    code.write_text(
        "from slipway.examples.breast_cancer import train as _t\n\ndef train(r):\n    return _t(r)\n"
    )
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        config = config_file(overrides={"training": {"entrypoint": "mytrain_cache:train"}})
        data = batch(501)
        first = run(data, config)
        assert first["cached"] == []
        again = run(data, config)
        assert again["cached"] == ["validation", "training"]
        assert again["model_version"] == first["model_version"]  # same release key: no duplicate version

        data.write_text(data.read_text().replace("\n", "\n", 1) + data.read_text().splitlines()[1] + "\n")
        changed_data = run(data, config)
        assert changed_data["cached"] == []

        changed_params = run(
            data, config_file("p.yaml", {"training": {"entrypoint": "mytrain_cache:train", "seed": 7}})
        )
        assert changed_params["cached"] == ["validation"]

        code.write_text(code.read_text() + "\n# a change in the training code\n")
        changed_code = run(
            data, config_file("c.yaml", {"training": {"entrypoint": "mytrain_cache:train", "seed": 7}})
        )
        assert changed_code["cached"] == ["validation"]
    finally:
        sys.path.remove(str(tmp_path))


def test_a_changed_suite_misses_the_validation_cache(home, batch, config_file, tmp_path) -> None:
    import json

    from tests.integration.conftest import REPO

    data = batch(601)
    run(data, config_file())
    suite = json.loads((REPO / "expectations" / "breast_cancer.json").read_text())
    suite["expectations"][1]["kwargs"]["min_value"] = 10
    edited = tmp_path / "suite.json"
    edited.write_text(json.dumps(suite))
    result = run(data, config_file("s.yaml", {"validation": {"suite": str(edited)}}))
    assert "validation" not in result["cached"]
    assert (
        result["lineage"]["slipway.suite_sha256"]
        != run(data, config_file())["lineage"]["slipway.suite_sha256"]
    )


def test_a_model_trained_elsewhere_ends_in_the_same_version_shape(
    home, batch, config_file, mlflow_client, ref
) -> None:
    import mlflow

    from slipway.data.batch_io import read_batch
    from slipway.examples.breast_cancer import train
    from slipway.training.base import TrainingRequest

    data = batch(701)
    trained = train(
        TrainingRequest(
            frame=read_batch(data),
            features=ref.features,
            label=ref.label,
            params={},
            seed=1,
            target=ref.target,
        )
    )
    mlflow.set_tracking_uri(f"sqlite:///{home / 'mlflow.db'}")
    mlflow.set_experiment("elsewhere")
    x, _ = ref.holdout_xy()
    with mlflow.start_run() as outside:
        mlflow.pytorch.log_model(
            trained.module, name="model", input_example=x[:2], pip_requirements=["torch"]
        )
    in_flow = run(batch(702), config_file())
    external = run(data, config_file(), model_uri=f"runs:/{outside.info.run_id}/model")

    assert external["decision"] == "registered", external["reasons"]
    assert external["model_version"] == "2"
    v1 = mlflow_client.get_model_version("breast-cancer-mlp", in_flow["model_version"])
    v2 = mlflow_client.get_model_version("breast-cancer-mlp", external["model_version"])
    assert set(v1.tags) == set(v2.tags)
    assert v2.tags["slipway.model_source"] == f"runs:/{outside.info.run_id}/model"
    assert v2.tags["slipway.training_code_sha256"].startswith("n/a")

    by_name = run(data, config_file(), model_uri="models:/breast-cancer-mlp/1")
    assert by_name["decision"] == "registered"
    assert by_name["model_version"] == "3"
    assert by_name["metrics"] == pytest.approx(in_flow["metrics"])


def test_an_unloadable_model_uri_ends_in_error_registers_nothing_and_writes_its_report(
    home, batch, config_file, mlflow_client
) -> None:
    result = run(batch(801), config_file(), model_uri="runs:/0123456789abcdef/model")
    assert (result["decision"], result["stage"]) == ("error", "training")
    assert any("runs:/0123456789abcdef/model" in r for r in result["reasons"])
    assert mlflow_client.search_registered_models() == []
    reports = [json.loads(p.read_text()) for p in (home / "reports").glob("release-*.json")]
    assert [(r["decision"], r["stage"]) for r in reports] == [("error", "training")]
