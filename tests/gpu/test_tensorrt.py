"""TensorRT on a real GPU: FP16 parity with ORT FP32, the engine cache, INT8 calibration, parser errors.

Skipped (with `unavailable_reason()` as the reason) wherever TensorRT or a CUDA GPU is missing.
Nothing here is mocked: a tiny example MLP is trained, exported with the project's exporter and built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from torch import nn

from slipway.data.generate import make_batch
from slipway.data.reference import Reference
from slipway.errors import OptimizationError
from slipway.examples.breast_cancer import train
from slipway.optimize.export import export_onnx
from slipway.optimize.parity import ort_outputs
from slipway.optimize.tensorrt import (
    TOLERANCES,
    benchmark,
    build_engine,
    check_parity,
    run_engine,
    unavailable_reason,
)
from slipway.training.base import TrainingRequest

pytestmark = pytest.mark.gpu
REASON = unavailable_reason()
if REASON is not None:
    pytest.skip(REASON, allow_module_level=True)

MAX_BATCH = 256


@pytest.fixture(scope="module")
def model(ref: Reference) -> nn.Module:
    """The example MLP trained briefly on resampled rows: the real architecture, float32 [N,30] -> [N,2]."""
    frame = make_batch(ref, rows=200, seed=0)
    request = TrainingRequest(
        frame=frame,
        features=ref.features,
        label=ref.label,
        params={"epochs": 5, "hidden": [16, 8]},
        seed=0,
        target=ref.target,
    )
    return train(request).module


@pytest.fixture(scope="module")
def onnx_path(model: nn.Module, holdout_x: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "model.onnx"
    export_onnx(model, example=holdout_x, path=path, opset=18)
    return path


@pytest.fixture(scope="module")
def ort_fp32(onnx_path: Path, holdout_x: np.ndarray) -> np.ndarray:
    return ort_outputs(onnx_path, holdout_x)


def test_fp16_engine_matches_ort_fp32_within_fp16_tolerance(
    onnx_path: Path, holdout_x: np.ndarray, ort_fp32: np.ndarray, tmp_path: Path
) -> None:
    result = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=MAX_BATCH
    )
    out = run_engine(result.engine, holdout_x)
    atol, rtol = TOLERANCES["fp16"]
    parity = check_parity(out, ort_fp32, atol=atol, rtol=rtol)
    assert out.shape == ort_fp32.shape
    assert parity.passed, parity.summary()
    assert not result.cache_hit and result.path.is_file() and result.build_s > 0


def test_second_build_with_the_same_key_is_a_cache_hit(
    onnx_path: Path, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    first = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=MAX_BATCH
    )
    second = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=MAX_BATCH
    )
    assert (first.cache_hit, second.cache_hit) == (False, True)
    assert second.key == first.key and second.path == first.path
    assert list(tmp_path.glob("*.engine")) == [first.path]
    np.testing.assert_array_equal(run_engine(second.engine, holdout_x), run_engine(first.engine, holdout_x))


def test_another_max_batch_is_another_engine(onnx_path: Path, tmp_path: Path) -> None:
    a = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=64
    )
    b = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=128
    )
    assert not b.cache_hit and a.path != b.path


def test_int8_engine_calibrates_on_the_rows_it_is_given(
    onnx_path: Path, ref: Reference, holdout_x: np.ndarray, ort_fp32: np.ndarray, tmp_path: Path
) -> None:
    calibration = ref.pool.loc[:, list(ref.features)].to_numpy(dtype=np.float32)[:256]
    result = build_engine(
        onnx_path=onnx_path,
        precision="int8",
        cache_dir=tmp_path,
        calibration=calibration,
        max_batch=MAX_BATCH,
    )
    out = run_engine(result.engine, holdout_x)
    atol, rtol = TOLERANCES["int8"]
    parity = check_parity(out, ort_fp32, atol=atol, rtol=rtol)
    assert out.shape == ort_fp32.shape and np.isfinite(out).all()
    assert parity.label_agreement >= 0.9, parity.summary()
    assert result.key.calibration_sha256


def test_int8_without_calibration_rows_is_refused(onnx_path: Path, tmp_path: Path) -> None:
    with pytest.raises(OptimizationError) as err:
        build_engine(onnx_path=onnx_path, precision="int8", cache_dir=tmp_path, calibration=None, max_batch=8)
    assert err.value.stage == "tensorrt-calibrate"


def test_a_corrupt_onnx_file_raises_naming_the_parser_error(tmp_path: Path) -> None:
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"this is not a protobuf model \x00\xff" * 8)
    with pytest.raises(OptimizationError) as err:
        build_engine(onnx_path=bad, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=8)
    assert err.value.stage == "tensorrt-parse"
    assert "ONNX parser rejected model.onnx: " in str(err.value)
    detail = err.value.cause.split(": ", 1)[1].strip()  # the parser's (or TensorRT's) own words
    assert detail and detail != "TensorRT reported no detail"
    assert not list(tmp_path.glob("*.engine"))


def test_benchmark_times_both_contenders_at_each_batch(
    onnx_path: Path, model: nn.Module, holdout_x: np.ndarray, tmp_path: Path
) -> None:
    result = build_engine(
        onnx_path=onnx_path, precision="fp16", cache_dir=tmp_path, calibration=None, max_batch=MAX_BATCH
    )
    rows = benchmark(
        engine=result.engine,
        module=model,
        x=holdout_x,
        batches=(1, MAX_BATCH),
        warmup=3,
        rounds=2,
        iterations=5,
    )
    assert [r.batch for r in rows] == [1, MAX_BATCH]
    for r in rows:
        assert r.samples == 10
        assert 0 < r.trt_p50_ms <= r.trt_p99_ms and 0 < r.torch_p50_ms <= r.torch_p99_ms
        assert r.speedup_p50 == pytest.approx(r.torch_p50_ms / r.trt_p50_ms)
    assert next(model.parameters()).device.type == "cpu"  # benchmarked a copy, left the caller's module alone
