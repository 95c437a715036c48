"""scikit-learn estimators and Pipelines (and LightGBM/XGBoost's scikit-learn models), converted by skl2onnx.

The model reads the float32 feature matrix in schema order (`request.x()`), so a ColumnTransformer
selects columns by position. Preprocessing is part of the model, hence of the ONNX graph: serving
cannot drift from training. Classifiers answer `predict_proba` (probabilities, columns put in the
project's class order); their class labels may be strings. Regressors answer `predict`.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slipway.errors import ModelContractError, OptimizationError
from slipway.evaluation.scoring import ClassOutput
from slipway.evaluation.target import Target
from slipway.frameworks.base import Exported, FrameworkAdapter, load_logged
from slipway.frameworks.classes import class_order
from slipway.frameworks.onnx_graph import contract_graph, save_graph
from slipway.names import Framework
from slipway.optimize.measure import Runner

ML_OPSET = 3  # ai.onnx.ml: TreeEnsemble*, LinearClassifier, Scaler, OneHotEncoder, Imputer
# package, onnxmltools converter module and function, class prefix, the regressor converter's options
_BOOSTER_CONVERTERS: tuple[tuple[str, str, str, str, dict[str, Any] | None], ...] = (
    (
        "lightgbm",
        "onnxmltools.convert.lightgbm.operator_converters.LightGbm",
        "convert_lightgbm",
        "LGBM",
        {"split": None},
    ),
    ("xgboost", "onnxmltools.convert.xgboost.operator_converters.XGBoost", "convert_xgboost", "XGB", None),
)
_BOOSTERS = tuple(package for package, *_ in _BOOSTER_CONVERTERS)


def _root(cls: type) -> str:
    return cls.__module__.split(".")[0]


def _is_classifier(model: Any) -> bool:
    from sklearn.base import is_classifier

    return hasattr(model, "classes_") or bool(is_classifier(model))


def parts(model: Any) -> Iterator[Any]:
    """Pure; the model and every estimator nested in it (Pipeline steps, ColumnTransformer and FeatureUnion parts)."""
    yield model
    nested: list[Any] = []
    if isinstance(getattr(model, "steps", None), list):
        nested = [step for _, step in model.steps]
    elif isinstance(getattr(model, "transformers_", None), list):
        nested = [t for _, t, _ in model.transformers_]
    elif isinstance(getattr(model, "transformer_list", None), list):
        nested = [t for _, t in model.transformer_list]
    for part in nested:
        if hasattr(part, "fit"):  # not "drop"/"passthrough"
            yield from parts(part)


def final_estimator(model: Any) -> Any:
    """Pure; the estimator that predicts (a Pipeline's last step, recursively)."""
    steps = getattr(model, "steps", None)
    return final_estimator(steps[-1][1]) if isinstance(steps, list) and steps else model


def converter_options(model: Any, *, classification: bool) -> dict[int, dict[str, Any]]:
    """Pure; skl2onnx options by estimator: no ZipMap on the classifier (a plain probability tensor), and every
    StandardScaler dividing in double then casting, as scikit-learn does (in float32 a scaled value on the
    wrong side of a tree threshold flips a branch: 0.01 probability off in a 100-tree forest)."""
    options: dict[int, dict[str, Any]] = {
        id(part): {"div": "div_cast"} for part in parts(model) if type(part).__name__ == "StandardScaler"
    }
    if classification:
        options[id(final_estimator(model))] = {"zipmap": False}
    return options


@functools.cache
def register_boosters() -> tuple[str, ...]:
    """Blocking (imports); teaches skl2onnx the LightGBM/XGBoost scikit-learn models via onnxmltools, once;
    the packages it could register (an absent one is skipped: its models then fail at export, named)."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    classifier = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    done = []
    for package, module, function, prefix, regressor in _BOOSTER_CONVERTERS:
        try:
            lib = importlib.import_module(package)
            convert = getattr(importlib.import_module(module), function)
        except ImportError:
            continue
        update_registered_converter(
            getattr(lib, f"{prefix}Classifier"), f"{package}{prefix}Classifier",
            calculate_linear_classifier_output_shapes, convert, options=classifier,
        )  # fmt: skip
        update_registered_converter(
            getattr(lib, f"{prefix}Regressor"), f"{package}{prefix}Regressor",
            calculate_linear_regressor_output_shapes, convert, options=regressor,
        )  # fmt: skip
        done.append(package)
    return tuple(done)


class SklearnAdapter(FrameworkAdapter):
    """scikit-learn-API models: estimators, Pipelines, ColumnTransformers, LightGBM/XGBoost wrappers."""

    name: ClassVar[Framework] = "sklearn"
    flavor: ClassVar[str] = "sklearn"
    reference: ClassVar[str] = "sklearn_native"

    def accepts(self, model: Any) -> bool:
        """Pure; a scikit-learn-API estimator (a class of sklearn in its MRO, with `predict`)."""
        return hasattr(model, "predict") and any(_root(c) == "sklearn" for c in type(model).__mro__)

    def load(self, uri: str) -> Any:
        """Blocking; mlflow.sklearn.load_model; ModelContractError if unloadable."""
        import mlflow

        return load_logged(uri, mlflow.sklearn.load_model, kind="a scikit-learn model")

    def log(self, model: Any, *, input_example: np.ndarray) -> Any:
        """Blocking; mlflow.sklearn (cloudpickle, explicit requirements: no inference subprocess)."""
        import mlflow

        requirements = mlflow.sklearn.get_default_pip_requirements(include_cloudpickle=True)
        used = {_root(type(part)) for part in parts(model)}
        requirements += [f"{p}=={v}" for p, v in self.versions().items() if p in _BOOSTERS and p in used]
        try:
            return mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=input_example,
                serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
                pip_requirements=requirements,
            )
        except Exception as exc:  # pickling a user's object can fail in many ways
            raise ModelContractError(
                f"MLflow cannot save the {self.describe(model)} model: {type(exc).__name__}: {exc}"
            ) from None

    def output_kind(self, model: Any, *, configured: ClassOutput) -> ClassOutput:
        """Pure; a classifier answers `predict_proba`, so probabilities whatever `training.output` says."""
        return "probabilities"

    def _check_task(self, model: Any, target: Target) -> None:
        if target.classification and not _is_classifier(model):
            raise ModelContractError(
                f"the {self.describe(model)} model is a regressor (no classes_), but the task is {target.task}"
            )
        if not target.classification and _is_classifier(model):
            raise ModelContractError(
                f"the {self.describe(model)} model is a classifier (classes {list(getattr(model, 'classes_', []))}), "
                "but the task is regression"
            )
        if target.classification and not hasattr(model, "classes_"):
            raise ModelContractError(f"the {self.describe(model)} classifier is not fitted (no classes_)")
        if target.classification and not hasattr(model, "predict_proba"):
            raise ModelContractError(
                f"the {self.describe(model)} classifier has no predict_proba: Slipway gates and serves class "
                "probabilities (wrap it in CalibratedClassifierCV, or set probability=True)"
            )

    def _columns(self, model: Any, target: Target) -> list[int] | None:
        """The task checked; the column order that puts the model's `classes_` in the project's order."""
        self._check_task(model, target)
        labels = list(model.classes_) if target.classification else None
        return class_order(labels, target=target, what=f"the {self.describe(model)} model")

    def raw_outputs(self, model: Any, x: np.ndarray, *, target: Target) -> np.ndarray:
        """Blocking; `predict_proba` (columns in the project's class order) or `predict`, on float32 x."""
        order = self._columns(model, target)
        data = np.ascontiguousarray(x, dtype=np.float32)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # "X does not have valid feature names"
                out = model.predict_proba(data) if target.classification else model.predict(data)
        except Exception as exc:  # the model's own code failed: a contract breach
            raise ModelContractError(
                f"the {self.describe(model)} model failed on input float32[{x.shape[0]}, {x.shape[1]}]: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        raw = np.asarray(out, dtype=np.float64)
        return raw if order is None else raw[:, order]

    def export(self, model: Any, *, example: np.ndarray, path: Path, opset: int, target: Target) -> Exported:
        """Blocking (~0.1-2 s); skl2onnx with ZipMap off; OptimizationError("export", the converter's message)."""
        from skl2onnx import to_onnx

        self._check_task(model, target)
        register_boosters()
        sample = np.ascontiguousarray(example[:1], dtype=np.float32)
        options = converter_options(model, classification=target.classification)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                graph = to_onnx(
                    model, sample, options=options, target_opset={"": opset, "ai.onnx.ml": ML_OPSET}
                )
        except Exception as exc:  # skl2onnx raises RuntimeError, MissingShapeCalculator, NameError, ...
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise OptimizationError(
                "export", f"skl2onnx cannot convert {self.describe(model)}: {type(exc).__name__}: {text}"
            ) from None
        try:
            # the columns' classes are the model's classes_, whatever the converter names in the graph
            labels = list(model.classes_) if target.classification else None
            fitted = contract_graph(graph, target=target, n_features=example.shape[1], labels=labels)
        except ModelContractError as exc:
            raise OptimizationError("export", f"{self.describe(model)}: {exc}") from None
        return save_graph(fitted, path=path, converter=f"skl2onnx {importlib.metadata.version('skl2onnx')}")

    def runner(self, model: Any, *, threads: int, target: Target) -> Runner:
        """Pure (loads lazily); bare `predict_proba`/`predict` in this process (threads as the estimator sets them)."""

        def load() -> Any:
            order = self._columns(model, target)
            if not target.classification:
                return model.predict
            if order is None:
                return model.predict_proba
            return lambda x: model.predict_proba(x)[:, order]

        return Runner(name=self.reference, load=load)

    def describe(self, model: Any) -> str:
        """Pure; `Pipeline(ColumnTransformer, LogisticRegression)`, or the estimator's class name."""
        steps = getattr(model, "steps", None)
        if isinstance(steps, list):
            return f"{type(model).__name__}({', '.join(type(step).__name__ for _, step in steps)})"
        return type(model).__name__

    def versions(self) -> dict[str, str]:
        """Blocking; scikit-learn and skl2onnx, plus onnxmltools/lightgbm/xgboost where installed."""
        out = {}
        for dist in ("scikit-learn", "skl2onnx", "onnxmltools", "lightgbm", "xgboost", "xgboost-cpu"):
            try:
                out[dist.removesuffix("-cpu")] = importlib.metadata.version(dist)
            except importlib.metadata.PackageNotFoundError:
                continue
        return out
