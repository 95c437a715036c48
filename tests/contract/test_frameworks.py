"""One framework adapter contract, run against every adapter: PyTorch, scikit-learn (a Pipeline with
preprocessing, a forest regressor, LightGBM and XGBoost) and ready ONNX models.

Each case is a fitted model, its data and the project's target; the contract is what every later stage
relies on: the adapter claims the model (and no other does), answers raw outputs the task can read, exports
a graph under the serving contract that reproduces them (the parity gate), times natively, and survives
an MLflow log/load round trip under its flavor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest

from slipway.config import OptimizeConfig
from slipway.data.reference import Reference
from slipway.evaluation.scoring import postprocess, predict
from slipway.frameworks.base import FrameworkAdapter
from slipway.frameworks.factory import adapter_for, adapter_for_flavors, adapters
from slipway.frameworks.onnx_model import OnnxAdapter
from slipway.frameworks.pytorch import PyTorchAdapter
from slipway.frameworks.sklearn import SklearnAdapter
from slipway.optimize.export import INPUT_NAME, OUTPUT_NAME, check_onnx
from slipway.optimize.parity import check_parity
from slipway.optimize.runtime import open_session
from tests.support import tabular_models
from tests.support.tabular_models import Case
from tests.support.torch_models import small_mlp

PARITY = OptimizeConfig().parity


class FrameworkContract(ABC):
    """Subclasses say which adapter and which fitted model; every test below must hold for all of them."""

    expected_output: str  # what output_kind says with training.output left at logits

    @abstractmethod
    def adapter(self) -> FrameworkAdapter: ...

    @pytest.fixture(scope="class")
    @abstractmethod
    def case(self, ref: Reference) -> Case: ...

    @pytest.fixture(scope="class")
    def exported(self, case: Case, tmp_path_factory: pytest.TempPathFactory) -> Any:
        path = tmp_path_factory.mktemp("export") / "model.onnx"
        return self.adapter().export(case.model, example=case.x, path=path, opset=18, target=case.target)

    def test_the_adapter_claims_its_models_and_no_other_adapter_does(self, case: Case) -> None:
        claims = [a.name for a in adapters() if a.accepts(case.model)]
        assert claims == [self.adapter().name]
        assert adapter_for(case.model).name == self.adapter().name
        assert adapter_for(case.model, framework=self.adapter().name).name == self.adapter().name

    def test_output_kind_is_what_the_model_answers(self, case: Case) -> None:
        assert self.adapter().output_kind(case.model, configured="logits") == self.expected_output

    def test_raw_outputs_are_what_the_task_reads(self, case: Case) -> None:
        adapter = self.adapter()
        raw = adapter.raw_outputs(case.model, case.x, target=case.target)
        kind = adapter.output_kind(case.model, configured="logits")
        answers = postprocess(raw, target=case.target, output=kind, rows=len(case.x))
        if case.target.classification:
            assert answers.shape == (len(case.x), len(case.target.classes))
            # a fitted model is far better than chance on its own training data, in the project's class order
            assert np.mean(answers.argmax(axis=1) == case.y) > 0.8
        else:
            assert answers.shape == (len(case.x),)
            assert np.corrcoef(answers, case.y)[0, 1] > 0.8
        assert np.allclose(predict(case.model, case.x, target=case.target), answers)

    def test_export_is_a_contract_graph_that_passes_parity(self, case: Case, exported: Any) -> None:
        check_onnx(exported.path)  # the ONNX checker and the I/O contract
        model = onnx.load(str(exported.path))
        assert [i.name for i in model.graph.input] == [INPUT_NAME]
        assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
        assert exported.size_bytes == exported.path.stat().st_size and len(exported.sha256) == 64
        assert exported.converter
        adapter = self.adapter()
        report = check_parity(
            adapter.raw_outputs(case.model, case.x, target=case.target),
            exported.path,
            case.x,
            atol=PARITY.atol,
            rtol=PARITY.rtol,
            target=case.target,
            output=adapter.output_kind(case.model, configured="logits"),
        )
        assert report.passed, report.summary()
        if case.target.classification:
            assert report.label_agreement == 1.0

    @pytest.mark.parametrize("batch", [1, 37])
    def test_the_exported_graph_serves_any_batch(self, case: Case, exported: Any, batch: int) -> None:
        x = np.ascontiguousarray(np.resize(case.x, (batch, case.x.shape[1])))
        got = open_session(exported.path).run(None, {INPUT_NAME: x})[0]
        want = self.adapter().raw_outputs(case.model, x, target=case.target)
        assert got.shape[0] == batch
        assert np.allclose(np.reshape(got, want.shape), want, atol=1e-4, rtol=1e-3)

    def test_the_native_runner_answers_the_raw_outputs(self, case: Case) -> None:
        adapter = self.adapter()
        runner = adapter.runner(case.model, threads=1, target=case.target)
        assert runner.name == adapter.reference
        got = np.asarray(runner.load()(np.ascontiguousarray(case.x[:32], dtype=np.float32)), dtype=np.float64)
        want = adapter.raw_outputs(case.model, case.x[:32], target=case.target)
        assert np.allclose(np.reshape(got, want.shape), want, atol=1e-4)

    def test_lineage_names_the_model_and_the_packages(self, case: Case) -> None:
        adapter = self.adapter()
        assert adapter.describe(case.model)
        assert adapter.versions() and all(adapter.versions().values())

    @pytest.mark.integration
    def test_an_mlflow_round_trip_keeps_the_model(self, case: Case, tmp_path: Path) -> None:
        import mlflow

        adapter = self.adapter()
        uri = f"sqlite:///{tmp_path}/mlflow.db"
        previous = mlflow.get_tracking_uri()
        mlflow.set_tracking_uri(uri)
        try:
            experiment = mlflow.create_experiment("frameworks", artifact_location=(tmp_path / "art").as_uri())
            with mlflow.start_run(experiment_id=experiment):
                info = adapter.log(case.model, input_example=case.x[:2])
            flavors = mlflow.models.get_model_info(info.model_uri).flavors
            assert adapter_for_flavors(flavors, uri=info.model_uri).name == adapter.name
            loaded = adapter.load(info.model_uri)
        finally:
            mlflow.set_tracking_uri(previous)
        assert adapter_for(loaded).name == adapter.name
        assert np.allclose(
            adapter.raw_outputs(loaded, case.x, target=case.target),
            adapter.raw_outputs(case.model, case.x, target=case.target),
            atol=1e-6,
        )


class TestPyTorch(FrameworkContract):
    expected_output = "logits"

    def adapter(self) -> FrameworkAdapter:
        return PyTorchAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Iterator[Case]:
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(1)
        x, y = ref.holdout_xy()
        yield Case(model=small_mlp(ref), x=x, y=y, target=ref.target)
        torch.set_num_threads(before)

    def test_raw_outputs_are_what_the_task_reads(self, case: Case) -> None:
        # 2 epochs on 48 rows is not a good model: only the shapes and the round trip through predict hold
        raw = self.adapter().raw_outputs(case.model, case.x, target=case.target)
        assert raw.shape == (len(case.x), 2)
        assert np.allclose(predict(case.model, case.x, target=case.target).sum(axis=1), 1.0)


class TestSklearnPipeline(FrameworkContract):
    expected_output = "probabilities"

    def adapter(self) -> FrameworkAdapter:
        return SklearnAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        return tabular_models.pipeline_case()


class TestSklearnScaledForest(FrameworkContract):
    expected_output = "probabilities"

    def adapter(self) -> FrameworkAdapter:
        return SklearnAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        return tabular_models.scaled_forest_case(ref)


class TestSklearnForestRegressor(FrameworkContract):
    expected_output = (
        "probabilities"  # a regressor's outputs are values; the kind only matters to classifiers
    )

    def adapter(self) -> FrameworkAdapter:
        return SklearnAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        return tabular_models.forest_regression_case()


class TestLightGBM(FrameworkContract):
    expected_output = "probabilities"

    def adapter(self) -> FrameworkAdapter:
        return SklearnAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        pytest.importorskip("lightgbm", reason="lightgbm is the [boosting] extra")
        return tabular_models.booster_case("lightgbm")


class TestXGBoost(FrameworkContract):
    expected_output = "probabilities"

    def adapter(self) -> FrameworkAdapter:
        return SklearnAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        pytest.importorskip("xgboost", reason="xgboost-cpu is the [boosting] extra")
        return tabular_models.booster_case("xgboost")


class TestReadyOnnx(FrameworkContract):
    expected_output = "probabilities"

    def adapter(self) -> FrameworkAdapter:
        return OnnxAdapter()

    @pytest.fixture(scope="class")
    def case(self, ref: Reference) -> Case:
        return tabular_models.onnx_case()
