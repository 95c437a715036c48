"""Ready ONNX models (a `.onnx` file, or an MLflow `onnx` model): nothing is exported, the graph is checked
against the project's schema and task and fitted to the serving contract (`onnx_graph.contract_graph`)."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from slipway.errors import ModelContractError, OptimizationError
from slipway.evaluation.scoring import ClassOutput
from slipway.evaluation.target import Target
from slipway.frameworks.base import Exported, FrameworkAdapter, load_logged
from slipway.frameworks.onnx_graph import contract_graph, graph_facts, run_graph, save_graph
from slipway.names import Framework
from slipway.optimize.measure import Runner


def is_onnx_file(uri: str) -> bool:
    """Pure-ish (stats the path); whether a model URI is a local `.onnx` file."""
    path = Path(uri.removeprefix("file://"))
    return path.suffix == ".onnx" and path.is_file()


class OnnxAdapter(FrameworkAdapter):
    """`onnx.ModelProto`s: scored and timed with ONNX Runtime; export only renames I/O (and orders classes)."""

    name: ClassVar[Framework] = "onnx"
    flavor: ClassVar[str] = "onnx"
    reference: ClassVar[str] = "onnx_source"

    def accepts(self, model: Any) -> bool:
        """Pure; an `onnx.ModelProto`."""
        return type(model).__name__ == "ModelProto" and type(model).__module__.split(".")[0] == "onnx"

    def load(self, uri: str) -> Any:
        """Blocking; a local `.onnx` file, or mlflow.onnx.load_model; ModelContractError if unloadable."""
        import mlflow
        import onnx

        if is_onnx_file(uri):
            try:
                return onnx.load(uri.removeprefix("file://"))
            except Exception as exc:  # protobuf DecodeError and friends
                raise ModelContractError(
                    f"cannot read ONNX file {uri!r}: {type(exc).__name__}: {exc}"
                ) from None
        return load_logged(uri, mlflow.onnx.load_model, kind="an ONNX model")

    def log(self, model: Any, *, input_example: np.ndarray) -> Any:
        """Blocking; mlflow.onnx with explicit requirements (no input example: its input names are its own)."""
        import mlflow

        try:
            return mlflow.onnx.log_model(
                model,
                name="model",
                pip_requirements=[f"{p}=={v}" for p, v in self.versions().items()],
                save_as_external_data=False,
            )
        except Exception as exc:  # a model MLflow cannot write
            raise ModelContractError(
                f"MLflow cannot save the ONNX model: {type(exc).__name__}: {exc}"
            ) from None

    def output_kind(self, model: Any, *, configured: ClassOutput) -> ClassOutput:
        """Pure; probabilities when the output comes from an ai.onnx.ml classifier or a Softmax, else `configured`."""
        return "probabilities" if graph_facts(model, n_features=None).probabilities else configured

    def raw_outputs(self, model: Any, x: np.ndarray, *, target: Target) -> np.ndarray:
        """Blocking; ONNX Runtime on the contract graph (checked against x's width and the task)."""
        graph = contract_graph(model, target=target, n_features=x.shape[1])
        try:
            return run_graph(graph, x)
        except OptimizationError as exc:
            raise ModelContractError(f"ONNX Runtime cannot run the ONNX model: {exc.cause}") from None
        except Exception as exc:  # ORT raises its own Fail/InvalidArgument types at run time
            raise ModelContractError(
                f"the ONNX model failed on input float32[{x.shape[0]}, {x.shape[1]}]: {type(exc).__name__}: {exc}"
            ) from None

    def export(self, model: Any, *, example: np.ndarray, path: Path, opset: int, target: Target) -> Exported:
        """Blocking; the contract graph written as it is (its own opsets, not `opset`); OptimizationError("export") if it cannot fit."""
        try:
            graph = contract_graph(model, target=target, n_features=example.shape[1])
        except ModelContractError as exc:
            raise OptimizationError("export", str(exc)) from None
        return save_graph(graph, path=path, converter="none (a ready ONNX model)")

    def runner(self, model: Any, *, threads: int, target: Target) -> Runner:
        """Pure (loads lazily); ORT over the graph as it came, behind the contract's renames (no maths added)."""

        def load() -> Any:
            from slipway.optimize.export import INPUT_NAME
            from slipway.optimize.runtime import open_session

            graph = contract_graph(model, target=target, n_features=None)
            session = open_session(graph.SerializeToString(), threads=threads)
            return lambda x: session.run(None, {INPUT_NAME: x})[0]

        return Runner(name=self.reference, load=load)

    def describe(self, model: Any) -> str:
        """Pure; `ONNX (skl2onnx 1.20.0; LinearClassifier, Normalizer)`: the producer and the op types."""
        ops = list(dict.fromkeys(n.op_type for n in model.graph.node))
        producer = f"{model.producer_name} {model.producer_version}".strip() or "unknown producer"
        return f"ONNX ({producer}; {', '.join(ops[:4])}{', ...' if len(ops) > 4 else ''})"

    def versions(self) -> dict[str, str]:
        """Blocking; onnx and onnxruntime."""
        return {p: importlib.metadata.version(p) for p in ("onnx", "onnxruntime")}
