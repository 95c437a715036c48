"""Export a contract-honouring torch module to ONNX with a dynamic batch axis, then check it."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slipway.errors import OptimizationError
from slipway.evaluation.scoring import eval_mode
from slipway.hashing import file_sha256

_ANSI = re.compile(r"\x1b\[[0-9;]*m")

INPUT_NAME = "input"
OUTPUT_NAME = "logits"


@dataclass(frozen=True)
class OnnxExport:
    """One exported file and what identifies it."""

    path: Path
    sha256: str
    opset: int
    size_bytes: int
    onnx_version: str
    torch_version: str


def _forward_arg(module: Any) -> str:
    import inspect

    params = [p for p in inspect.signature(module.forward).parameters.values() if p.name != "self"]
    if len(params) != 1:
        raise OptimizationError(
            "export",
            f"forward() must take exactly one tensor (features [N, n]), it takes {[p.name for p in params]}",
        )
    return params[0].name


def _first_line(exc: BaseException) -> str:
    """`Outer <- Root: first line of root`; the exporter wraps the real cause in a page of coloured advice."""
    root, seen = exc, {id(exc)}
    while root.__cause__ is not None and id(root.__cause__) not in seen:
        root = root.__cause__
        seen.add(id(root))
    text = _ANSI.sub("", str(root)).strip()
    names = type(exc).__name__ if root is exc else f"{type(exc).__name__} <- {type(root).__name__}"
    return f"{names}: {text.splitlines()[0] if text else ''}"


def export_onnx(module: Any, *, example: np.ndarray, path: Path, opset: int) -> OnnxExport:
    """Blocking (~2-5 s); overwrites `path`; OptimizationError("export", cause) if the module cannot export."""
    import onnx
    import torch

    if not isinstance(module, torch.nn.Module):
        raise OptimizationError("export", f"not a torch module: {type(module).__name__}")
    eval_mode(module)
    arg = _forward_arg(module)
    path.parent.mkdir(parents=True, exist_ok=True)
    x = torch.from_numpy(np.ascontiguousarray(example[: max(2, min(len(example), 4))], dtype=np.float32))
    quiet = io.StringIO()
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
        warnings.simplefilter("ignore")
        # one torch.export trace, the same MLflow's pt2 format needs, then ONNX from that program
        try:
            program = torch.export.export(module, (x,), dynamic_shapes={arg: {0: torch.export.Dim("batch")}})
        except Exception as exc:  # torch.export raises many types; every one means "not exportable"
            raise OptimizationError("export", f"torch.export failed: {_first_line(exc)}") from None
        try:
            onnx_program = torch.onnx.export(
                program,
                (x,),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                verbose=False,
            )
            if onnx_program is None:  # pragma: no cover - dynamo=True always returns a program
                raise OptimizationError("export", "torch.onnx.export returned no program")
            onnx_program.save(str(path))
        except OptimizationError:
            raise
        except Exception as exc:  # the ONNX translator raises many types; every one is an export failure
            raise OptimizationError("export", f"torch.onnx.export failed: {_first_line(exc)}") from None
    check_onnx(path)
    model = onnx.load(str(path), load_external_data=False)
    opsets = {o.domain: o.version for o in model.opset_import}
    return OnnxExport(
        path=path,
        sha256=file_sha256(path),
        opset=int(opsets.get("", opset)),
        size_bytes=path.stat().st_size,
        onnx_version=onnx.__version__,
        torch_version=torch.__version__.split("+")[0],
    )


def check_onnx(path: Path) -> None:
    """Blocking; the ONNX checker (full, with shape inference) and the I/O contract; OptimizationError if either fails."""
    import onnx

    try:
        model = onnx.load(str(path))
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:
        raise OptimizationError("onnx-check", f"{path.name} is not a valid ONNX model: {exc}") from None
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    if inputs != [INPUT_NAME] or not outputs or outputs[0] != OUTPUT_NAME:
        raise OptimizationError(
            "onnx-check",
            f"{path.name} has inputs {inputs} and outputs {outputs}; the contract is ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}', ...]",
        )
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if not dims or dims[0].dim_value != 0:  # a fixed batch would break batch-32 serving
        raise OptimizationError("onnx-check", f"{path.name}: input batch axis is not dynamic")
