"""`make bench` (optimization part) end to end on the quick protocol: every key, sane values, no timing claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.bench.optimize import (
    HEADLINE_KEYS,
    SECOND_MODEL,
    SHIPPED_MODEL,
    TORCH,
    ratios,
    run,
)
from slipway.config import OptimizeConfig
from slipway.optimize.measure import Measurement

pytestmark = pytest.mark.slow  # trains two small models, exports and quantizes them: ~15 s on 2 cores

REPO = Path(__file__).resolve().parents[2]
CANDIDATES = list(OptimizeConfig().candidates)


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    return out, run(out, quick=True, config_path=REPO / "slipway.yaml")


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_the_json_on_disk_is_the_returned_document(bench: tuple[Path, dict[str, Any]]) -> None:
    out, doc = bench
    assert json.loads((out / "optimize.json").read_text()) == doc


def test_headline_keys_are_sane_for_the_shipped_model(bench: tuple[Path, dict[str, Any]]) -> None:
    _, doc = bench
    assert doc["shipped_model"] == SHIPPED_MODEL
    for key in HEADLINE_KEYS:
        if key.endswith("_points"):
            assert -100.0 <= doc[key] <= 100.0, key
        else:
            assert _positive(doc[key]), (key, doc[key])
    assert doc["shipped"] in CANDIDATES
    assert doc["models"][SHIPPED_MODEL]["candidates"][doc["shipped"]]["eligible"] is True
    assert set(doc["targets"]) == {"ort_fp32_over_torch_p50_b1", "int8_accuracy_delta_points"}
    assert all(isinstance(t["met"], bool) for t in doc["targets"].values())


@pytest.mark.parametrize("name", [SHIPPED_MODEL, SECOND_MODEL])
def test_every_candidate_row_is_present_with_numbers_or_a_reason(
    bench: tuple[Path, dict[str, Any]], name: str
) -> None:
    _, doc = bench
    section = doc["models"][name]
    assert section["parity"]["passed"] is True, section["parity"]["summary"]
    assert list(section["candidates"]) == [*CANDIDATES, TORCH]
    assert section["shipped"] in CANDIDATES
    for cand, row in section["candidates"].items():
        assert row["verdict"], cand
        if row["status"] not in ("built", "reference"):
            continue
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["size_bytes"] > 0 and row["load_ms"] >= 0
        for batch in ("1", "32"):
            assert _positive(row["p50_ms"][batch]) and row["p99_ms"][batch] >= row["p50_ms"][batch]
    for key, value in section["ratios"].items():
        assert value is None or math.isfinite(value), key


def test_the_digits_cnn_is_a_real_model(bench: tuple[Path, dict[str, Any]]) -> None:
    _, doc = bench
    section = doc["models"][SECOND_MODEL]
    assert section["candidates"]["fp32"]["accuracy"] >= 0.95
    assert section["parameters"] > 10 * doc["models"][SHIPPED_MODEL]["parameters"]


def test_machine_facts_and_markdown(bench: tuple[Path, dict[str, Any]]) -> None:
    out, doc = bench
    machine = doc["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["onnxruntime"] and machine["torch"]
    assert isinstance(machine["avx512_vnni"], bool) and isinstance(machine["avx_vnni"], bool)
    md = (out / "optimize.md").read_text()
    assert "ORT FP32 / PyTorch eager, p50 batch 1" in md
    assert SHIPPED_MODEL in md and SECOND_MODEL in md
    assert "| met |" in md or "| **missed** |" in md


def _measured(name: str, *, p50: float, accuracy: float) -> Measurement:
    m = Measurement(name=name, size_bytes=1, load_ms=1.0, quality=accuracy, outputs=np.zeros((1, 2)))
    m.samples = {1: [p50] * 3, 32: [p50 * 4] * 3}
    return m


def test_ratios_are_p50_quotients_and_none_for_a_missing_runner() -> None:
    m = {
        "fp32": _measured("fp32", p50=1.0, accuracy=0.95),
        TORCH: _measured(TORCH, p50=4.0, accuracy=0.95),
        "int8_dynamic": _measured("int8_dynamic", p50=0.5, accuracy=0.94),
    }
    r = ratios(m)
    assert r["ort_fp32_over_torch_p50_b1"] == pytest.approx(0.25)
    assert r["int8_over_fp32_p50_b32"] == pytest.approx(0.5)
    assert r["int8_accuracy_delta_points"] == pytest.approx(-1.0)
    assert r["int8_static_over_fp32_p50_b1"] is None
    assert r["int8_static_accuracy_delta_points"] is None
