"""Framework adapters where a model does not fit: every failure names the part at fault.

(What every adapter must do when the model fits is the contract suite, tests/contract/test_frameworks.py.)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import LinearSVC

from slipway.errors import ModelContractError, OptimizationError
from slipway.evaluation.target import Target
from slipway.frameworks.classes import class_order
from slipway.frameworks.factory import adapter_for, adapter_for_flavors
from slipway.frameworks.onnx_model import OnnxAdapter
from slipway.frameworks.sklearn import SklearnAdapter
from slipway.release.stages.training import as_trained, identify
from slipway.training.base import TrainedModel
from tests.support import tabular_models

SPECIES = Target(task="multiclass", label="species", classes=("cat", "dog", "emu"))
YES_NO = Target(task="binary", label="answer", classes=("yes", "no"))  # positive class "no"
VALUE = Target(task="regression", label="value")


# -- class order: pure ---------------------------------------------------------------------------------


def test_label_valued_classes_are_put_in_the_projects_order() -> None:
    assert class_order(["no", "yes"], target=YES_NO, what="m") == [1, 0]
    assert class_order(["cat", "dog", "emu"], target=SPECIES, what="m") is None
    assert class_order(["emu", "cat", "dog"], target=SPECIES, what="m") == [1, 2, 0]


def test_integer_labels_match_by_value_and_indices_are_taken_as_indices() -> None:
    ints = Target(task="binary", label="y", classes=(1, 0))  # positive class 0
    assert class_order([0, 1], target=ints, what="m") == [1, 0]  # sklearn classes_ are label values
    assert class_order([0, 1, 2], target=SPECIES, what="m") is None  # trained on request.y()


def test_classes_that_are_not_the_projects_are_refused_naming_both() -> None:
    with pytest.raises(ModelContractError, match=r"\['ant', 'bee', 'cat'\].*\['cat', 'dog', 'emu'\]"):
        class_order(["ant", "bee", "cat"], target=SPECIES, what="the model")


def test_regression_and_unnamed_classes_keep_their_columns() -> None:
    assert class_order(None, target=SPECIES, what="m") is None
    assert class_order(["a"], target=VALUE, what="m") is None


# -- which adapter -------------------------------------------------------------------------------------


def test_an_object_of_no_supported_framework_is_refused_naming_its_type() -> None:
    with pytest.raises(ModelContractError, match=r"builtins\.dict"):
        adapter_for({"weights": [1.0]})
    with pytest.raises(ModelContractError, match=r"builtins\.dict"):
        as_trained({"weights": [1.0]})


def test_a_bare_model_from_an_entrypoint_is_wrapped() -> None:
    model = LinearRegression()
    assert as_trained(model).module is model


def test_a_model_of_another_framework_than_configured_is_refused_naming_both() -> None:
    with pytest.raises(ModelContractError, match=r"training\.framework is pytorch.*sklearn"):
        adapter_for(LinearRegression(), framework="pytorch")


def test_identify_records_the_framework_and_what_the_outputs_are() -> None:
    case = tabular_models.pipeline_case()
    got = identify(TrainedModel(module=case.model), framework="auto", configured="logits", target=SPECIES)
    assert (got.framework, got.output) == ("sklearn", "probabilities")
    reg = tabular_models.forest_regression_case()
    assert (
        identify(
            TrainedModel(module=reg.model), framework="sklearn", configured="logits", target=VALUE
        ).output
        == "values"
    )


def test_an_unsupported_mlflow_flavor_is_refused_naming_it_and_the_supported_ones() -> None:
    with pytest.raises(ModelContractError, match=r"\['tensorflow'\].*\['pytorch', 'sklearn', 'onnx'\]"):
        adapter_for_flavors({"python_function", "tensorflow"}, uri="runs:/abc/model")
    assert adapter_for_flavors({"python_function", "sklearn"}, uri="runs:/abc/model").name == "sklearn"


# -- scikit-learn models that do not fit -------------------------------------------------------------


class Homemade(ClassifierMixin, BaseEstimator):
    """A classifier skl2onnx has never heard of."""

    def fit(self, x: np.ndarray, y: np.ndarray) -> Homemade:
        self.classes_ = np.unique(y)
        return self

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.full((len(x), len(self.classes_)), 1.0 / len(self.classes_))

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.classes_[np.zeros(len(x), dtype=int)]


def _species_xy() -> tuple[np.ndarray, np.ndarray]:
    x = np.nan_to_num(tabular_models.features())
    return x, tabular_models.species(x)


def test_an_estimator_the_converter_cannot_handle_fails_at_export_naming_it(tmp_path: Path) -> None:
    x, y = _species_xy()
    model = Homemade().fit(x, y)
    with pytest.raises(OptimizationError) as caught:
        SklearnAdapter().export(model, example=x, path=tmp_path / "m.onnx", opset=18, target=SPECIES)
    assert caught.value.stage == "export"
    assert "Homemade" in caught.value.cause
    assert not (tmp_path / "m.onnx").exists()


def test_a_classifier_without_predict_proba_is_refused(tmp_path: Path) -> None:
    x, y = _species_xy()
    with pytest.raises(ModelContractError, match="LinearSVC"):
        SklearnAdapter().raw_outputs(LinearSVC().fit(x, y), x, target=SPECIES)


def test_a_regressor_for_a_classification_task_and_the_reverse_are_refused() -> None:
    x, y = _species_xy()
    with pytest.raises(ModelContractError, match="regressor"):
        SklearnAdapter().raw_outputs(LinearRegression().fit(x, x[:, 0]), x, target=SPECIES)
    with pytest.raises(ModelContractError, match="classifier"):
        SklearnAdapter().raw_outputs(LogisticRegression(max_iter=300).fit(x, y), x, target=VALUE)


def test_a_model_failing_on_the_schemas_width_is_a_contract_error() -> None:
    x, y = _species_xy()
    model = LogisticRegression(max_iter=300).fit(x[:, :3], y)
    with pytest.raises(ModelContractError, match=r"float32\[240, 5\]"):
        SklearnAdapter().raw_outputs(model, x, target=SPECIES)


# -- ready ONNX graphs that do not fit -----------------------------------------------------------------


def _onnx(options: dict[str, Any] | None = None, width: int = 5) -> Any:
    from skl2onnx import to_onnx

    x, y = _species_xy()
    clf = LogisticRegression(max_iter=300).fit(x[:, :width], y)
    return to_onnx(clf, x[:1, :width], options=options, target_opset={"": 18, "ai.onnx.ml": 3})


def test_an_onnx_graph_of_another_width_is_refused_naming_the_schema() -> None:
    graph = _onnx({"zipmap": False}, width=4)
    x, _ = _species_xy()
    with pytest.raises(ModelContractError, match=r"5 feature\(s\).*float32\[N, 5\]"):
        OnnxAdapter().raw_outputs(graph, x, target=SPECIES)


def test_an_onnx_graph_answering_zipmap_dictionaries_is_refused_with_the_fix() -> None:
    x, _ = _species_xy()
    with pytest.raises(ModelContractError, match="zipmap=False"):
        OnnxAdapter().raw_outputs(_onnx(), x, target=SPECIES)


def test_an_onnx_classifier_of_other_classes_is_refused_naming_them(tmp_path: Path) -> None:
    x, _ = _species_xy()
    other = Target(task="multiclass", label="species", classes=("ant", "bee", "cat"))
    with pytest.raises(OptimizationError, match=r"\['cat', 'dog', 'emu'\]") as caught:
        OnnxAdapter().export(
            _onnx({"zipmap": False}), example=x, path=tmp_path / "m.onnx", opset=18, target=other
        )
    assert caught.value.stage == "export"


def test_a_ready_graph_with_two_inputs_is_refused() -> None:
    from onnx import TensorProto, helper

    a = helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 2])
    b = helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 3])
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, [None, 5])
    graph = helper.make_model(
        helper.make_graph([helper.make_node("Concat", ["a", "b"], ["out"], axis=1)], "g", [a, b], [out])
    )
    with pytest.raises(ModelContractError, match=r"a: float32\[\?, 2\], b: float32\[\?, 3\]"):
        OnnxAdapter().raw_outputs(graph, np.zeros((2, 5), dtype=np.float32), target=SPECIES)


# -- contract graphs: collisions, idempotence, scores vs probabilities -----------------------------------


def _served(graph: Any, x: np.ndarray) -> np.ndarray:
    from slipway.frameworks.onnx_graph import run_graph

    return run_graph(graph, x)


def test_a_contract_graph_fed_back_comes_back_unchanged() -> None:
    from slipway.frameworks.onnx_graph import contract_graph

    x, _ = _species_xy()
    reordered = Target(task="multiclass", label="species", classes=("emu", "cat", "dog"))  # not sorted
    once = contract_graph(_onnx({"zipmap": False}), target=reordered, n_features=5)
    twice = contract_graph(once, target=reordered, n_features=5)
    assert np.array_equal(_served(once, x), _served(twice, x))  # not reordered a second time


def test_tensors_already_named_like_the_contract_move_aside() -> None:
    from onnx import TensorProto, helper

    from slipway.frameworks.onnx_graph import contract_graph

    # input "features", a hidden tensor called "input", a first output "probs" and a second called "logits"
    x_in = helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, 2])
    probs = helper.make_tensor_value_info("probs", TensorProto.FLOAT, [None, 2])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [None, 2])
    nodes = [
        helper.make_node("Identity", ["features"], ["input"]),
        helper.make_node("Identity", ["input"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "g", [x_in], [probs, logits]), opset_imports=[helper.make_opsetid("", 18)]
    )
    two = Target(task="binary", label="y", classes=(0, 1))
    fitted = contract_graph(model, target=two, n_features=2)
    x = np.array([[0.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    assert np.allclose(_served(fitted, x), e / e.sum(axis=1, keepdims=True), atol=1e-6)
    assert OnnxAdapter().output_kind(model, configured="logits") == "probabilities"  # a Softmax answers


def test_a_linear_classifiers_raw_scores_are_not_taken_for_probabilities() -> None:
    from skl2onnx import to_onnx

    x, y = _species_xy()
    svm = to_onnx(LinearSVC().fit(x, y), x[:1], target_opset={"": 18, "ai.onnx.ml": 3})
    assert OnnxAdapter().output_kind(svm, configured="logits") == "logits"  # training.output decides
    assert OnnxAdapter().output_kind(_onnx({"zipmap": False}), configured="logits") == "probabilities"


def test_a_converter_naming_no_classes_still_gets_the_projects_column_order(tmp_path: Path) -> None:
    from sklearn.neural_network import MLPClassifier

    from slipway.optimize.parity import ort_outputs

    x, _ = _species_xy()
    labels = tabular_models.binary_labels(x)
    model = MLPClassifier(hidden_layer_sizes=(8,), max_iter=300, random_state=0).fit(x, labels)
    adapter = SklearnAdapter()
    exported = adapter.export(model, example=x, path=tmp_path / "m.onnx", opset=18, target=YES_NO)
    assert np.allclose(ort_outputs(exported.path, x), adapter.raw_outputs(model, x, target=YES_NO), atol=1e-5)
    assert list(YES_NO.classes) == ["yes", "no"] and list(model.classes_) == ["no", "yes"]


def test_tensorrt_is_skipped_naming_the_framework_for_a_model_that_is_not_pytorch(tmp_path: Path) -> None:
    from slipway.registry.base import Registration
    from slipway.registry.fake import InMemoryRegistry
    from slipway.release.ledger import Evidence
    from slipway.release.stages.tensorrt import tensorrt_handoff
    from tests.support.release import prepared

    ctx = prepared(tmp_path, overrides={"optimize": {"tensorrt": {"deployment": "optimize-gpu/gpu"}}})
    registry = InMemoryRegistry()
    model = LogisticRegression().fit(np.eye(4), [0, 1, 0, 1])
    version = registry.register(
        Registration(
            model_name="m",
            module=model,
            input_example=np.eye(4)[:1],
            params={},
            metrics={},
            tags={},
            release_key="k",
        )
    )
    evidence = Evidence(trained=TrainedModel(module=model, framework="sklearn"), version=version)

    def never(*_: Any) -> tuple[bool, str]:
        raise AssertionError("the GPU flow must not run for a scikit-learn model")

    outcome = tensorrt_handoff(ctx, evidence, registry=registry, run_gpu_flow=never)
    assert outcome.verdict == "skipped" and "sklearn" in str(outcome.value)
    assert (
        registry.get_version(model_name="m", version=version.version).tags["slipway.tensorrt.status"]
        == "skipped"
    )
