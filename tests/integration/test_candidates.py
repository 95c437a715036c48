"""CPU candidates built from a real export: what is built, what is unsupported (and why), what fails alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from slipway.config import OptimizeConfig
from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.errors import OptimizationError
from slipway.hashing import file_sha256
from slipway.optimize.candidates import Candidate, build_candidates
from slipway.optimize.export import check_onnx, export_onnx
from slipway.optimize.parity import ort_outputs
from tests.support.torch_models import one_torch_thread, small_mlp

__all__ = ["one_torch_thread"]  # a fixture, shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

NAMES = ["fp32", "int8_dynamic", "int8_static_qdq", "int4_weight_only"]
OPSET = OptimizeConfig().opset


@pytest.fixture(scope="module")
def calibration(ref: Reference) -> np.ndarray:
    frame = make_batch(ref, rows=48, seed=0)
    return frame.loc[:, list(ref.features)].to_numpy(dtype=np.float32)


@pytest.fixture(scope="module")
def mlp_onnx(ref: Reference, holdout_x: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example MLP (Sub/Div, then Gemm layers) trained for 2 epochs and exported."""
    path = tmp_path_factory.mktemp("mlp") / "model.onnx"
    return export_onnx(small_mlp(ref), example=holdout_x, path=path, opset=OPSET).path


@pytest.fixture(scope="module")
def built(
    mlp_onnx: Path, calibration: np.ndarray, tmp_path_factory: pytest.TempPathFactory
) -> list[Candidate]:
    return build_candidates(
        mlp_onnx, tmp_path_factory.mktemp("candidates"), names=NAMES, calibration=calibration
    )


class MatMulNet(nn.Module):
    """`x @ W` layers (ONNX MatMul, not Gemm); K = 64 is a multiple of the INT4 block size 32."""

    def __init__(self) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(0)
        self.w1 = nn.Parameter(torch.randn(64, 64, generator=gen) * 0.2)
        self.w2 = nn.Parameter(torch.randn(64, 2, generator=gen) * 0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x @ self.w1) @ self.w2


def by_name(candidates: list[Candidate]) -> dict[str, Candidate]:
    return {c.name: c for c in candidates}


# -- the example MLP -----------------------------------------------------------------------------------


def test_every_requested_candidate_is_reported_fp32_first(built: list[Candidate]) -> None:
    assert [c.name for c in built] == NAMES


@pytest.mark.parametrize("name", ["fp32", "int8_dynamic", "int8_static_qdq"])
def test_fp32_and_int8_candidates_are_built_files_that_onnxruntime_runs(
    built: list[Candidate], name: str, holdout_x: np.ndarray, mlp_onnx: Path
) -> None:
    cand = by_name(built)[name]
    assert cand.status == "built", cand.reason
    assert cand.path is not None and cand.path.is_file()
    assert cand.sha256 == file_sha256(cand.path)
    assert cand.size_bytes == cand.path.stat().st_size
    assert cand.reason
    check_onnx(cand.path)  # still honours the I/O contract, batch axis dynamic
    out = ort_outputs(cand.path, holdout_x)
    reference = ort_outputs(mlp_onnx, holdout_x)
    assert out.shape == reference.shape
    assert np.all(np.isfinite(out))
    # quantized, not broken: the same class on nearly every holdout row
    assert np.mean(out.argmax(1) == reference.argmax(1)) >= 0.9


@pytest.mark.parametrize(
    ("name", "ops"),
    [
        ("int8_dynamic", {"DynamicQuantizeLinear", "MatMulInteger"}),
        ("int8_static_qdq", {"QuantizeLinear", "DequantizeLinear"}),
    ],
)
def test_int8_candidates_really_are_quantized(built: list[Candidate], name: str, ops: set[str]) -> None:
    path = by_name(built)[name].path
    assert path is not None
    assert ops <= {n.op_type for n in onnx.load(str(path)).graph.node}


def test_static_int8_reason_names_the_calibration(built: list[Candidate], calibration: np.ndarray) -> None:
    assert f"calibration on {len(calibration)} training rows" in by_name(built)["int8_static_qdq"].reason


def test_int4_is_unsupported_on_a_gemm_graph_with_the_reason(built: list[Candidate]) -> None:
    int4 = by_name(built)["int4_weight_only"]
    assert int4.status == "unsupported"
    assert (int4.path, int4.sha256, int4.size_bytes) == (None, None, None)
    assert "0 MatMul and 3 Gemm node(s)" in int4.reason
    assert "MatMulNBits" in int4.reason


def test_unknown_candidate_name_is_an_error(mlp_onnx: Path, calibration: np.ndarray, tmp_path: Path) -> None:
    with pytest.raises(OptimizationError) as exc:
        build_candidates(mlp_onnx, tmp_path, names=["fp32", "int3"], calibration=calibration)
    assert exc.value.stage == "optimize"
    assert "'int3'" in exc.value.cause


def test_empty_calibration_fails_static_int8_alone(mlp_onnx: Path, tmp_path: Path) -> None:
    result = by_name(
        build_candidates(mlp_onnx, tmp_path, names=NAMES, calibration=np.empty((0, 30), dtype=np.float32))
    )
    static = result["int8_static_qdq"]
    assert static.status == "failed"
    assert static.path is None
    assert "quantize:int8_static_qdq" in static.reason
    assert "no calibration rows" in static.reason
    assert result["fp32"].status == result["int8_dynamic"].status == "built"
    assert result["int4_weight_only"].status == "unsupported"


def test_calibration_of_the_wrong_width_fails_static_int8_alone(mlp_onnx: Path, tmp_path: Path) -> None:
    wrong = np.ones((16, 7), dtype=np.float32)
    result = by_name(
        build_candidates(mlp_onnx, tmp_path, names=["int8_dynamic", "int8_static_qdq"], calibration=wrong)
    )
    assert result["int8_static_qdq"].status == "failed"
    assert result["int8_static_qdq"].reason.startswith("quantize:int8_static_qdq: ")
    assert result["fp32"].status == result["int8_dynamic"].status == "built"


@pytest.mark.parametrize("content", [b"", b"\x08\x07not a protobuf at all" * 50])
def test_a_corrupt_export_fails_the_fp32_baseline(
    content: bytes, calibration: np.ndarray, tmp_path: Path
) -> None:
    corrupt = tmp_path / "model.onnx"
    corrupt.write_bytes(content)
    with pytest.raises(OptimizationError) as exc:
        build_candidates(corrupt, tmp_path / "out", names=NAMES, calibration=calibration)
    assert exc.value.stage.startswith("optimize:fp32")
    assert "model.onnx" in exc.value.cause


def test_rebuilding_into_the_same_folder_quantizes_the_new_export(
    mlp_onnx: Path, calibration: np.ndarray, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    # a retried release reuses its work folder; the second model's candidates must be the second model's
    out = tmp_path / "candidates"
    first = by_name(build_candidates(mlp_onnx, out, names=NAMES, calibration=calibration))
    model = onnx.load(str(mlp_onnx))
    bias = next(i for i in model.graph.initializer if i.name == "net.6.bias")
    bias.CopyFrom(
        numpy_helper.from_array(
            numpy_helper.to_array(bias) + np.array([5.0, 0.0], dtype=np.float32), bias.name
        )
    )
    other = tmp_path / "other.onnx"
    onnx.save(model, str(other))

    second = by_name(build_candidates(other, out, names=NAMES, calibration=calibration))

    expected = ort_outputs(other, holdout_x)
    for name in ("int8_dynamic", "int8_static_qdq"):
        assert second[name].sha256 != first[name].sha256, name
        path = second[name].path
        assert path is not None
        got = ort_outputs(path, holdout_x)
        assert np.abs(got[:, 0] - expected[:, 0]).max() < 1.0, name  # the +5 shift is there


# -- a MatMul model: INT4 weight-only applies ----------------------------------------------------------


@pytest.fixture(scope="module")
def matmul_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    x = np.random.default_rng(0).normal(size=(8, 64)).astype(np.float32)
    path = tmp_path_factory.mktemp("matmul") / "model.onnx"
    return export_onnx(MatMulNet(), example=x, path=path, opset=OPSET).path


def test_int4_is_built_with_matmulnbits_on_a_matmul_graph(matmul_onnx: Path, tmp_path: Path) -> None:
    x = np.random.default_rng(1).normal(size=(32, 64)).astype(np.float32)
    result = by_name(build_candidates(matmul_onnx, tmp_path, names=NAMES, calibration=x))
    int4 = result["int4_weight_only"]
    assert int4.status == "built", int4.reason
    assert int4.path is not None and int4.sha256 == file_sha256(int4.path)
    ops = [n.op_type for n in onnx.load(str(int4.path)).graph.node]
    assert ops.count("MatMulNBits") == 2
    assert "MatMul" not in ops
    assert "on 2 MatMul node(s)" in int4.reason
    assert int4.size_bytes is not None and result["fp32"].size_bytes is not None
    assert int4.size_bytes < result["fp32"].size_bytes / 2  # 4-bit weights: a much smaller file
    reference = ort_outputs(matmul_onnx, x)
    got = ort_outputs(int4.path, x)
    assert got.shape == reference.shape
    # 4-bit weights: close to FP32 (about 10% relative error on random weights), yet not identical
    rel = float(np.linalg.norm(got - reference) / np.linalg.norm(reference))
    assert 0.0 < rel < 0.25
