"""The TensorRT stage where it cannot run: a precise reason, a well-formed skipped report, stable engine keys.

Runs everywhere. No TensorRT number is produced here: the only numbers are synthetic inputs to the
pure formatting and parity functions, labelled as such.
"""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from slipway.errors import OptimizationError
from slipway.optimize.tensorrt import (
    NOT_INSTALLED,
    TOLERANCES,
    EngineKey,
    EngineReport,
    LatencyRow,
    build_engine,
    check_parity,
    parse_precisions,
    skipped,
    summarize,
    unavailable_reason,
)

TRT_INSTALLED = importlib.util.find_spec("tensorrt") is not None
GPU = torch.cuda.is_available()
KEY = EngineKey(
    onnx_sha256="a" * 64, tensorrt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3", precision="fp16"
)


def test_the_reason_names_each_missing_piece() -> None:
    reason = unavailable_reason()
    if TRT_INSTALLED and GPU:
        assert reason is None
        return
    assert isinstance(reason, str) and reason
    assert (NOT_INSTALLED in reason) == (not TRT_INSTALLED)
    assert ("no CUDA GPU visible" in reason) == (not GPU)


@pytest.mark.skipif(TRT_INSTALLED and GPU, reason="TensorRT can run here")
def test_building_where_tensorrt_cannot_run_fails_with_that_reason(tmp_path: Path) -> None:
    with pytest.raises(OptimizationError) as err:
        build_engine(
            onnx_path=tmp_path / "model.onnx",
            precision="fp16",
            cache_dir=tmp_path,
            calibration=None,
            max_batch=8,
        )
    assert err.value.stage == "tensorrt"
    assert err.value.cause == unavailable_reason()


@pytest.mark.skipif(TRT_INSTALLED and GPU, reason="TensorRT can run here")
def test_the_gpu_flow_fails_rather_than_skips_on_a_machine_without_tensorrt() -> None:
    from flows.optimize_gpu import optimize_gpu

    with pytest.raises(OptimizationError, match="optimize-gpu needs TensorRT and a CUDA GPU"):
        optimize_gpu.fn(model_name="m", version="1")


def test_a_skipped_report_has_well_formed_tags_and_rows() -> None:
    report = skipped("no GPU worker configured")
    assert report.status == "skipped"
    assert report.reason == "tensorrt: skipped (no GPU worker configured)"
    tags = report.as_tags()
    assert tags == {
        "slipway.tensorrt.status": "skipped",
        "slipway.tensorrt.reason": "tensorrt: skipped (no GPU worker configured)",
    }
    rows = report.as_rows()
    assert len(rows) == 1 and rows[0]["status"] == "skipped" and rows[0]["note"] == report.reason
    json.dumps(rows)
    assert report.model_validate(report.model_dump(mode="json")) == report


def test_a_built_report_keeps_one_row_shape_and_string_tags() -> None:
    # synthetic numbers: this checks formatting only, it measures nothing
    ref = np.array([[1.0, -1.0], [0.5, 0.25]], dtype=np.float32)
    parity = check_parity(ref + np.float32(1e-3), ref, atol=1e-2, rtol=1e-2)
    latency = [
        LatencyRow(
            batch=b,
            samples=10,
            trt_p50_ms=1.0,
            trt_p99_ms=2.0,
            torch_p50_ms=3.0,
            torch_p99_ms=4.0,
            speedup_p50=3.0,
        )
        for b in (1, 1024)
    ]
    engine = EngineReport(
        precision="fp16",
        engine=KEY.file_name(),
        onnx_sha256=KEY.onnx_sha256,
        build_s=1.5,
        cache_hit=False,
        parity=parity,
        latency=latency,
    )
    report = summarize([engine], gpu=KEY.gpu_name, version=KEY.tensorrt_version)
    assert report.status == "built"
    tags = report.as_tags()
    assert all(k.startswith("slipway.tensorrt.") and isinstance(v, str) for k, v in tags.items())
    assert tags["slipway.tensorrt.fp16.parity"] == "passed"
    assert tags["slipway.tensorrt.fp16.batch1024.speedup_p50"] == "3.00"
    rows = report.as_rows()
    assert [r["batch"] for r in rows] == [1, 1024]
    assert len({tuple(r) for r in rows} | {tuple(skipped("x").as_rows()[0])}) == 1  # same columns everywhere
    json.dumps(rows)


def test_a_parity_miss_fails_the_report_and_names_the_worst_row() -> None:
    ref = np.zeros((4, 2), dtype=np.float32)
    out = ref.copy()
    out[2, 1] = 0.5  # synthetic: one value far outside fp16 tolerance
    atol, rtol = TOLERANCES["fp16"]
    parity = check_parity(out, ref, atol=atol, rtol=rtol)
    assert not parity.passed and parity.worst_row == 2 and parity.max_abs_error == pytest.approx(0.5)
    engine = EngineReport(
        precision="fp16",
        engine=KEY.file_name(),
        onnx_sha256=KEY.onnx_sha256,
        build_s=0.1,
        cache_hit=True,
        parity=parity,
    )
    report = summarize([engine], gpu=KEY.gpu_name, version=KEY.tensorrt_version)
    assert report.status == "failed" and "fp16 parity" in report.reason and "worst row 2" in report.reason


@pytest.mark.parametrize(
    "change",
    [
        {"onnx_sha256": "b" * 64},
        {"tensorrt_version": "10.10.0"},
        {"gpu_name": "NVIDIA A100-SXM4-40GB"},
        {"precision": "int8"},
        {"max_batch": 64},
        {"opt_batch": 1},
        {"calibration_sha256": "c" * 64},
    ],
)
def test_the_engine_file_name_changes_with_each_part_of_the_key(change: dict[str, object]) -> None:
    other = replace(KEY, **change)
    assert other.file_name() != KEY.file_name()


def test_the_engine_file_name_is_stable_and_path_safe() -> None:
    same = EngineKey(
        onnx_sha256="a" * 64, tensorrt_version="10.9.0", gpu_name="NVIDIA H100 80GB HBM3", precision="fp16"
    )
    name = KEY.file_name()
    assert same.file_name() == name
    assert name.endswith(".engine") and name.startswith("fp16-aaaaaaaaaaaa-")
    assert all(c.isalnum() or c in "-_." for c in name)


def test_precisions_are_checked_and_deduplicated() -> None:
    assert parse_precisions(["fp16", "int8", "fp16"]) == ["fp16", "int8"]
    with pytest.raises(OptimizationError, match="bf16"):
        parse_precisions(["fp16", "bf16"])
    with pytest.raises(OptimizationError):
        parse_precisions([])
