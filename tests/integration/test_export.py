"""ONNX export of contract-honouring modules, and the checker that guards every file we ship."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from slipway.config import OptimizeConfig
from slipway.data.reference import Reference
from slipway.errors import OptimizationError
from slipway.evaluation.target import Target
from slipway.frameworks.pytorch import PyTorchAdapter
from slipway.optimize.export import INPUT_NAME, OUTPUT_NAME, OnnxExport, check_onnx, export_onnx
from slipway.optimize.runtime import open_session
from tests.support.torch_models import one_torch_thread, small_mlp

__all__ = ["one_torch_thread"]  # a fixture, shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPSET = OptimizeConfig().opset


@pytest.fixture(scope="module")
def mlp(ref: Reference) -> nn.Module:
    """The example MLP trained small: real architecture, float32 [N, 30] -> [N, 2]."""
    return small_mlp(ref)


@pytest.fixture(scope="module")
def exported(mlp: nn.Module, holdout_x: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> OnnxExport:
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    return export_onnx(mlp, example=holdout_x, path=path, opset=OPSET)


class TwoInputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(30, 2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.linear(x * mask)  # type: ignore[no-any-return]


class BranchesOnValues(nn.Module):
    """Python control flow on a tensor's value: torch.export cannot trace a graph for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(30, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum().item() > 0:
            return self.linear(x)  # type: ignore[no-any-return]
        return -self.linear(x)  # type: ignore[no-any-return]


class KthValue(nn.Module):
    """torch.export traces it, but the ONNX translator has no function for aten.kthvalue."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.kthvalue(3, dim=1).values, x[:, 0]], dim=1)


# -- export -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 37])
def test_exported_mlp_runs_at_any_batch_size_and_matches_torch(
    mlp: nn.Module, exported: OnnxExport, holdout_x: np.ndarray, batch: int
) -> None:
    # exported from a 4-row example; serving sends 1 row, and the holdout has 142
    x = np.ascontiguousarray(np.resize(holdout_x, (batch, holdout_x.shape[1])))
    got = open_session(exported.path).run(None, {INPUT_NAME: x})[0]
    assert got.shape == (batch, 2)
    assert np.allclose(
        got,
        PyTorchAdapter().raw_outputs(mlp, x, target=Target(task="binary", label="target", classes=(0, 1))),
        atol=1e-5,
    )


def test_exported_file_declares_the_contract_with_a_symbolic_batch(exported: OnnxExport) -> None:
    model = onnx.load(str(exported.path))
    assert [i.name for i in model.graph.input] == [INPUT_NAME]
    assert [o.name for o in model.graph.output] == [OUTPUT_NAME]
    batch, features = model.graph.input[0].type.tensor_type.shape.dim
    assert batch.dim_param and not batch.dim_value
    assert features.dim_value == 30


def test_export_records_what_identifies_the_file(exported: OnnxExport) -> None:
    blob = exported.path.read_bytes()
    assert exported.sha256 == hashlib.sha256(blob).hexdigest()
    assert exported.size_bytes == len(blob)
    assert exported.opset == OPSET
    assert {o.domain: o.version for o in onnx.load(str(exported.path)).opset_import}[""] == OPSET
    assert exported.torch_version == torch.__version__.split("+")[0]
    assert exported.onnx_version == onnx.__version__


def test_export_honours_a_non_default_opset(
    mlp: nn.Module, holdout_x: np.ndarray, exported: OnnxExport, tmp_path: Path
) -> None:
    other = 20
    assert other != OPSET
    result = export_onnx(mlp, example=holdout_x, path=tmp_path / "model.onnx", opset=other)
    assert result.opset == other
    assert {o.domain: o.version for o in onnx.load(str(result.path)).opset_import}[""] == other
    assert result.sha256 != exported.sha256


def test_forward_with_two_tensors_is_an_export_error_naming_them(
    holdout_x: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(OptimizationError) as exc:
        export_onnx(TwoInputs(), example=holdout_x, path=tmp_path / "m.onnx", opset=OPSET)
    assert exc.value.stage == "export"
    assert "['x', 'mask']" in exc.value.cause
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.parametrize("thing", [lambda x: x, np.zeros((2, 30)), "model.pt"])
def test_a_non_module_is_an_export_error(thing: Any, holdout_x: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(OptimizationError) as exc:
        export_onnx(thing, example=holdout_x, path=tmp_path / "m.onnx", opset=OPSET)
    assert exc.value.stage == "export"
    assert f"not a torch module: {type(thing).__name__}" in exc.value.cause


def test_data_dependent_control_flow_is_an_export_error_with_the_real_cause(
    holdout_x: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(OptimizationError) as exc:
        export_onnx(BranchesOnValues(), example=holdout_x, path=tmp_path / "m.onnx", opset=OPSET)
    assert exc.value.stage == "export"
    cause = exc.value.cause
    assert "export failed: " in cause
    # the cause, not the exporter's boilerplate around it, and no terminal colour codes
    assert "GuardOnDataDependentSymNode" in cause
    assert "data-dependent expression" in cause
    assert "\x1b" not in cause
    assert str(exc.value) == f"export: {cause}"
    assert not (tmp_path / "m.onnx").exists()


def test_an_op_without_onnx_translation_is_an_export_error_naming_the_op(
    holdout_x: np.ndarray, tmp_path: Path
) -> None:
    with pytest.raises(OptimizationError) as exc:
        export_onnx(KthValue(), example=holdout_x, path=tmp_path / "m.onnx", opset=OPSET)
    assert exc.value.stage == "export"
    cause = exc.value.cause
    assert "aten.kthvalue" in cause
    assert "No ONNX function found" in cause
    assert "\x1b" not in cause
    assert not (tmp_path / "m.onnx").exists()


# -- check_onnx ---------------------------------------------------------------------------------------


def test_check_onnx_accepts_the_export(exported: OnnxExport) -> None:
    check_onnx(exported.path)


def test_check_onnx_rejects_random_bytes(tmp_path: Path) -> None:
    path = tmp_path / "random.onnx"
    path.write_bytes(np.random.default_rng(0).bytes(2048))
    with pytest.raises(OptimizationError) as exc:
        check_onnx(path)
    assert exc.value.stage == "onnx-check"
    assert "random.onnx is not a valid ONNX model" in exc.value.cause


def test_check_onnx_rejects_a_truncated_file(exported: OnnxExport, tmp_path: Path) -> None:
    path = tmp_path / "truncated.onnx"
    blob = exported.path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(OptimizationError) as exc:
        check_onnx(path)
    assert exc.value.stage == "onnx-check"
    assert "truncated.onnx is not a valid ONNX model" in exc.value.cause


def test_check_onnx_rejects_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(OptimizationError) as exc:
        check_onnx(tmp_path / "absent.onnx")
    assert exc.value.stage == "onnx-check"


def _rename_input(src: Path, dst: Path, new: str) -> None:
    model = onnx.load(str(src))
    model.graph.input[0].name = new
    for node in model.graph.node:
        node.input[:] = [new if i == INPUT_NAME else i for i in node.input]
    onnx.save(model, str(dst))


def test_check_onnx_names_the_contract_when_the_input_is_misnamed(
    exported: OnnxExport, tmp_path: Path
) -> None:
    path = tmp_path / "renamed.onnx"
    _rename_input(exported.path, path, "features")
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)  # valid ONNX, wrong contract
    with pytest.raises(OptimizationError) as exc:
        check_onnx(path)
    assert exc.value.stage == "onnx-check"
    assert "inputs ['features']" in exc.value.cause
    assert f"the contract is ['{INPUT_NAME}'] -> ['{OUTPUT_NAME}', ...]" in exc.value.cause


def test_check_onnx_rejects_a_fixed_batch_axis(exported: OnnxExport, tmp_path: Path) -> None:
    model = onnx.load(str(exported.path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 4
    path = tmp_path / "fixed.onnx"
    onnx.save(model, str(path))
    with pytest.raises(OptimizationError) as exc:
        check_onnx(path)
    assert exc.value.stage == "onnx-check"
    assert "batch axis is not dynamic" in exc.value.cause
