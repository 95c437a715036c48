"""The parity gate: `compare` as a pure verdict, and `check_parity` on real and deliberately broken exports."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper
from torch import nn

from slipway.config import OptimizeConfig
from slipway.data.reference import Reference
from slipway.evaluation.target import Target
from slipway.examples.breast_cancer import MLP
from slipway.frameworks.pytorch import PyTorchAdapter
from slipway.optimize.export import export_onnx
from slipway.optimize.parity import check_parity, compare, ort_outputs
from tests.support.torch_models import one_torch_thread, small_mlp

__all__ = ["one_torch_thread"]  # a fixture, shared

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ATOL, RTOL = OptimizeConfig().parity.atol, OptimizeConfig().parity.rtol
BINARY = Target(task="binary", label="target", classes=(0, 1))


def torch_outputs(module: nn.Module, x: np.ndarray) -> np.ndarray:
    """The module's raw outputs (logits), as the parity gate's reference."""
    return PyTorchAdapter().raw_outputs(module, x, target=BINARY)


def tol(ref: float) -> float:
    return ATOL + RTOL * abs(ref)


@pytest.fixture
def reference() -> np.ndarray:
    return np.random.default_rng(3).normal(scale=4.0, size=(6, 3))


# -- compare: pure ------------------------------------------------------------------------------------


def test_identical_outputs_pass_with_zero_error(reference: np.ndarray) -> None:
    report = compare(reference, reference.copy(), atol=ATOL, rtol=RTOL)
    assert report.passed
    assert (report.rows, report.mismatched_values) == (6, 0)
    assert report.max_abs_error == report.max_rel_error == 0.0
    assert report.label_agreement == 1.0
    assert report.summary().startswith("parity passed on 6 rows")


def test_one_value_beyond_tolerance_fails_naming_row_output_and_values(reference: np.ndarray) -> None:
    cand = reference.copy()
    delta = 1.5 * tol(reference[4, 2])
    cand[4, 2] += delta

    report = compare(reference, cand, atol=ATOL, rtol=RTOL)

    assert not report.passed
    assert (report.worst_row, report.worst_output) == (4, 2)
    assert report.reference_value == reference[4, 2]
    assert report.candidate_value == cand[4, 2]
    assert report.mismatched_values == 1
    assert report.max_abs_error == pytest.approx(delta)
    assert report.max_rel_error == pytest.approx(delta / abs(reference[4, 2]))
    summary = report.summary()
    assert "parity FAILED on 6 rows" in summary
    assert "worst row 4 output 2" in summary
    assert f"reference {reference[4, 2]:.6g} vs onnx {cand[4, 2]:.6g}" in summary
    assert "1 value(s) out of tolerance" in summary
    assert f"max abs error {delta:.3g}" in summary
    assert f"atol {ATOL:g}, rtol {RTOL:g}" in summary


def test_value_just_inside_tolerance_passes_but_is_still_the_worst(reference: np.ndarray) -> None:
    cand = reference.copy()
    cand[1, 0] -= 0.99 * tol(reference[1, 0])
    report = compare(reference, cand, atol=ATOL, rtol=RTOL)
    assert report.passed
    assert report.mismatched_values == 0
    assert (report.worst_row, report.worst_output) == (1, 0)


def test_worst_row_is_the_largest_excess_over_tolerance_not_the_largest_error() -> None:
    ref = np.array([[1000.0, 1.0], [0.01, 0.02]])
    cand = ref.copy()
    cand[0, 0] += 0.5  # big error, but within rtol * 1000 = 1.0
    cand[1, 1] += 0.01  # small error, far beyond 1e-4 + 1e-3 * 0.02
    report = compare(ref, cand, atol=ATOL, rtol=RTOL)
    assert not report.passed
    assert report.max_abs_error == pytest.approx(0.5)
    assert (report.worst_row, report.worst_output) == (1, 1)
    assert report.mismatched_values == 1


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_candidate_value_fails(reference: np.ndarray, bad: float) -> None:
    cand = reference.copy()
    cand[2, 1] = bad
    report = compare(reference, cand, atol=ATOL, rtol=RTOL)
    assert not report.passed
    assert (report.worst_row, report.worst_output, report.mismatched_values) == (2, 1, 1)
    assert report.max_abs_error == float("inf")
    assert report.reference_value == reference[2, 1]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_on_both_sides_fails(reference: np.ndarray, bad: float) -> None:
    # numpy.isclose semantics: NaN is close to nothing, and a reference that is inf proves nothing
    ref, cand = reference.copy(), reference.copy()
    ref[3, 0] = cand[3, 0] = bad
    report = compare(ref, cand, atol=ATOL, rtol=RTOL)
    assert not report.passed
    assert (report.worst_row, report.worst_output, report.mismatched_values) == (3, 0, 1)


@pytest.mark.parametrize(
    ("ref_shape", "cand_shape"),
    [((5, 2), (4, 2)), ((5, 2), (5, 3)), ((5, 2), (10,)), ((10, 1, 1), (10, 1, 1))],
)
def test_shape_mismatch_or_not_a_matrix_fails(
    ref_shape: tuple[int, ...], cand_shape: tuple[int, ...]
) -> None:
    report = compare(np.zeros(ref_shape), np.zeros(cand_shape), atol=ATOL, rtol=RTOL)
    assert not report.passed
    assert report.mismatched_values == 10
    assert report.max_abs_error == float("inf")


def test_no_rows_is_no_evidence_of_parity() -> None:
    report = compare(np.zeros((0, 2)), np.zeros((0, 2)), atol=ATOL, rtol=RTOL)
    assert not report.passed
    assert report.rows == 0


def test_label_agreement_counts_rows_whose_argmax_differs() -> None:
    ref = np.tile([[0.0, 1.0]], (8, 1))
    cand = ref.copy()
    cand[[2, 5]] = [1.0, 0.0]  # two flipped rows
    report = compare(ref, cand, atol=ATOL, rtol=RTOL)
    assert report.label_agreement == pytest.approx(6 / 8)
    assert report.mismatched_values == 4
    assert "label agreement 75.00%" in report.summary()


def test_label_flip_within_tolerance_passes_and_is_reported() -> None:
    ref = np.array([[0.5, 0.50001], [2.0, -1.0]])
    cand = np.array([[0.50001, 0.5], [2.0, -1.0]])
    report = compare(ref, cand, atol=ATOL, rtol=RTOL)
    assert report.passed
    assert report.label_agreement == 0.5


# -- check_parity on real exports -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def mlp(ref: Reference) -> MLP:
    """The example MLP trained small: real architecture, float32 [N, 30] -> logits [N, 2]."""
    return small_mlp(ref)


@pytest.fixture(scope="module")
def exported(mlp: nn.Module, holdout_x: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("parity") / "model.onnx"
    return export_onnx(mlp, example=holdout_x, path=path, opset=OptimizeConfig().opset).path


def test_faithful_export_passes_parity_on_the_holdout(
    mlp: MLP, exported: Path, holdout_x: np.ndarray
) -> None:
    report = check_parity(torch_outputs(mlp, holdout_x), exported, holdout_x, atol=ATOL, rtol=RTOL)
    assert report.passed, report.summary()
    assert report.rows == len(holdout_x)
    assert report.max_abs_error < ATOL
    assert report.label_agreement == 1.0


def _edited(src: Path, dst: Path, name: str, edit: np.ndarray) -> Path:
    model = onnx.load(str(src))
    init = next(i for i in model.graph.initializer if i.name == name)
    init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + edit, name))
    onnx.save(model, str(dst))
    return dst


def test_export_with_one_edited_weight_fails_parity_naming_the_numbers(
    mlp: MLP, exported: Path, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    # one weight of the logits layer's class-1 row, on the hidden unit that fires most
    with torch.no_grad():
        scaled = (torch.from_numpy(holdout_x) - mlp.get_buffer("mean")) / mlp.get_buffer("std")
        acts = mlp.net[:-1](scaled).numpy()
    unit = int(acts.mean(axis=0).argmax())
    weight = mlp.get_parameter("net.6.weight")
    edit = np.zeros(tuple(weight.shape), dtype=np.float32)
    edit[1, unit] = 0.5
    broken = _edited(exported, tmp_path / "broken.onnx", "net.6.weight", edit)

    # what the broken file should compute: the same edit on a torch twin
    twin = copy.deepcopy(mlp)
    with torch.no_grad():
        twin.get_parameter("net.6.weight").add_(torch.from_numpy(edit))
    ref, expected = torch_outputs(mlp, holdout_x), torch_outputs(twin, holdout_x)
    excess = np.abs(expected - ref) - (ATOL + RTOL * np.abs(ref))
    row = int(excess[:, 1].argmax())

    report = check_parity(torch_outputs(mlp, holdout_x), broken, holdout_x, atol=ATOL, rtol=RTOL)

    assert not report.passed
    assert (report.worst_row, report.worst_output) == (row, 1)
    assert report.reference_value == pytest.approx(ref[row, 1], abs=1e-6)
    assert report.candidate_value == pytest.approx(expected[row, 1], abs=1e-5)
    assert report.max_abs_error == pytest.approx(0.5 * acts[:, unit].max(), rel=1e-4)
    assert report.mismatched_values == int(np.count_nonzero(excess > 0)) > 0
    assert report.label_agreement == pytest.approx(np.mean(ref.argmax(1) == expected.argmax(1)))
    summary = report.summary()
    assert f"parity FAILED on {len(holdout_x)} rows" in summary
    assert f"worst row {row} output 1" in summary
    assert f"max abs error {report.max_abs_error:.3g}" in summary
    assert f"reference {report.reference_value:.6g} vs onnx {report.candidate_value:.6g}" in summary
    assert f"{report.mismatched_values} value(s) out of tolerance" in summary
    # the edit really is in the file: ORT alone reproduces the twin
    assert np.allclose(ort_outputs(broken, holdout_x), expected, atol=1e-5)


def test_export_with_a_swapped_activation_fails_parity(
    mlp: MLP, exported: Path, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    model = onnx.load(str(exported))
    relu = next(n for n in model.graph.node if n.op_type == "Relu")
    relu.op_type = "Sigmoid"  # same signature, different function
    onnx.save(model, str(tmp_path / "sigmoid.onnx"))
    report = check_parity(
        torch_outputs(mlp, holdout_x), tmp_path / "sigmoid.onnx", holdout_x, atol=ATOL, rtol=RTOL
    )
    assert not report.passed
    assert report.max_abs_error > 10 * ATOL
    assert report.mismatched_values > 0
