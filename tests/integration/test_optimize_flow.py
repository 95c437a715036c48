"""The optimization stage inside the release flow: registered ONNX files, parity and export rejections."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flows.release import run_release

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Training entrypoints whose models pass the quality gate but break the optimization stage:
# one exports a graph that differs from the eager model (a deliberately broken export), one
# cannot be exported at all (numpy inside forward).
BROKEN_MODELS = """
import torch
from slipway.examples.breast_cancer import train as _train
from slipway.training.base import TrainedModel


class DriftsWhenExported(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        out = self.inner(x)
        if torch.compiler.is_exporting():  # only the exported graph gets the offset, on one class's logit
            out = out + torch.tensor([0.25, 0.0])  # (the same offset on every logit would not change an answer)
        return out


class NumpyInside(torch.nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return torch.from_numpy(self.inner(x).detach().numpy().copy())


def broken_export(request):
    trained = _train(request)
    return TrainedModel(module=DriftsWhenExported(trained.module).eval(), params=trained.params)


def unexportable(request):
    trained = _train(request)
    return TrainedModel(module=NumpyInside(trained.module).eval(), params=trained.params)


from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


class Delegating(ClassifierMixin, BaseEstimator):
    # a good classifier no ONNX converter knows

    def fit(self, x, y):
        self.inner_ = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
        self.classes_ = self.inner_.classes_
        return self

    def predict_proba(self, x):
        return self.inner_.predict_proba(x)

    def predict(self, x):
        return self.inner_.predict(x)


def unconvertible(request):
    return Delegating().fit(request.x(), request.y())  # the bare model: no TrainedModel needed
"""


@pytest.fixture()
def broken_models(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "broken_models_mod.py").write_text(BROKEN_MODELS)
    sys.path.insert(0, str(tmp_path))
    try:
        yield "broken_models_mod"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("broken_models_mod", None)


def run(data: Path, config: Path) -> dict[str, Any]:
    return run_release(data=str(data), model_uri=None, config_path=str(config))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_registered_version_carries_every_onnx_file_its_sha256_and_the_decision_table(
    home, batch, config_file, mlflow_client, tmp_path
) -> None:
    result = run(batch(701), config_file())
    assert result["decision"] == "registered", result["reasons"]
    opt = result["optimization"]
    assert opt["shipped"] in {"fp32", "int8_dynamic", "int8_static_qdq", "int4_weight_only"}
    assert result["tensorrt"] == "skipped (no GPU worker configured)"
    assert "tensorrt: skipped (no GPU worker configured)" in result["reasons"]

    mv = mlflow_client.get_model_version("breast-cancer-mlp", result["model_version"])
    assert mv.tags["slipway.onnx.opset"] == "18"
    assert mv.tags["slipway.version.onnxruntime"] and mv.tags["slipway.version.onnx"]
    assert mv.tags["slipway.parity"] == "passed"
    assert mv.tags["slipway.optimize.shipped"] == opt["shipped"]
    assert mv.tags["slipway.tensorrt.status"] == "skipped"
    assert mv.tags["slipway.tensorrt.reason"] == "tensorrt: skipped (no GPU worker configured)"
    names = {a.path for a in mlflow_client.list_artifacts(mv.run_id, "onnx")}
    assert {"onnx/model.onnx", "onnx/fp32.onnx"} <= names
    # every registered file matches the sha256 on the version, and the shipped one is among them
    dl = tmp_path / "dl"
    for art in names:
        local = Path(mlflow_client.download_artifacts(mv.run_id, art, str(dl)))
        key = "slipway.onnx.sha256" if art == "onnx/model.onnx" else f"slipway.onnx.{Path(art).stem}.sha256"
        assert mv.tags[key] == _sha256(local), art
    assert mv.tags["slipway.optimize.shipped_artifact"] in names
    assert mv.tags["slipway.optimize.shipped_sha256"] == opt["sha256"]

    table = json.loads(
        Path(mlflow_client.download_artifacts(mv.run_id, "slipway/optimization.json", str(dl))).read_text()
    )
    rows = {r["name"]: r for r in table["selection"]["rows"]}
    assert set(rows) == {"fp32", "int8_dynamic", "int8_static_qdq", "int4_weight_only", "torch_eager"}
    assert rows["fp32"]["p50_ms"] and rows["fp32"]["p99_ms"] and rows["fp32"]["load_ms"] > 0
    assert (
        rows["int4_weight_only"]["status"] == "unsupported" and "Gemm" in rows["int4_weight_only"]["verdict"]
    )
    assert table["selection"]["shipped"] == opt["shipped"]


def test_a_broken_export_is_stopped_by_the_parity_gate_and_nothing_is_registered(
    home, batch, config_file, mlflow_client, broken_models
) -> None:
    good = run(batch(711), config_file())
    assert good["decision"] == "registered"
    mlflow_client.set_registered_model_alias("breast-cancer-mlp", "champion", good["model_version"])

    cfg = config_file("broken.yaml", {"training": {"entrypoint": f"{broken_models}:broken_export"}})
    result = run(batch(712), cfg)

    assert result["decision"] == "rejected"
    assert result["stage"] == "parity"
    failure = next(r for r in result["reasons"] if r.startswith("FAIL: parity FAILED"))
    assert "worst row" in failure and "max abs error" in failure
    # nothing half-registered: one version only, champion and challenger untouched
    versions = mlflow_client.search_model_versions("name='breast-cancer-mlp'")
    assert [str(v.version) for v in versions] == [good["model_version"]]
    assert str(mlflow_client.get_model_version_by_alias("breast-cancer-mlp", "champion").version) == "1"
    run_ = mlflow_client.get_run(result["mlflow_run_id"])
    assert run_.data.tags["slipway.rejected_at"] == "parity"
    assert run_.data.tags["slipway.parity"] == "failed"


def test_a_model_that_cannot_export_is_rejected_naming_the_stage_and_cause(
    home, batch, config_file, mlflow_client, broken_models
) -> None:
    cfg = config_file("unexportable.yaml", {"training": {"entrypoint": f"{broken_models}:unexportable"}})
    result = run(batch(721), cfg)

    assert result["decision"] == "rejected"
    assert result["stage"] == "export"
    assert any(
        r.startswith("FAIL: export: torch.export failed: RuntimeError: .numpy()") for r in result["reasons"]
    )
    assert mlflow_client.search_model_versions("name='breast-cancer-mlp'") == []
    assert mlflow_client.get_run(result["mlflow_run_id"]).data.tags["slipway.rejected_at"] == "export"


def test_an_estimator_no_converter_handles_is_rejected_at_export_naming_it_and_nothing_is_registered(
    home, batch, config_file, mlflow_client, broken_models
) -> None:
    cfg = config_file("unconvertible.yaml", {"training": {"entrypoint": f"{broken_models}:unconvertible"}})
    result = run(batch(722), cfg)

    assert (result["decision"], result["stage"]) == ("rejected", "export"), result["reasons"]
    assert result["metrics"]["accuracy"] > 0.9  # it passed the quality gate: only the conversion failed
    assert any(r.startswith("FAIL: export: skl2onnx cannot convert Delegating") for r in result["reasons"])
    assert mlflow_client.search_model_versions("name='breast-cancer-mlp'") == []
    tags = mlflow_client.get_run(result["mlflow_run_id"]).data.tags
    assert (tags["slipway.rejected_at"], tags["slipway.model.framework"]) == ("export", "sklearn")
