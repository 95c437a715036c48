"""`make bench` (monitor part) end to end on the quick protocol: every key, rates in [0, 1], no timing claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from slipway.bench.monitor import (
    QUICK_SIZES,
    QUICK_WINDOWS,
    rates,
    render_markdown,
    run,
    shifted_feature,
    wilson,
)

PARTS = ("read_logs_s", "build_window_s", "detect_drift_s", "monitor_verdict_s", "save_html_s")


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    return out, run(out, quick=True)


def _seconds(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value >= 0


@pytest.mark.slow  # a dozen Evidently drift reports on a 1,000-row reference: ~1 min on 2 cores
def test_the_json_on_disk_is_the_returned_document(bench: tuple[Path, dict[str, Any]]) -> None:
    out, doc = bench
    assert json.loads((out / "monitor.json").read_text()) == doc
    assert (out / "monitor.md").read_text() == render_markdown(doc)
    assert doc["quick"] is True


@pytest.mark.slow
def test_every_size_has_every_part_and_reads_every_logged_row(bench: tuple[Path, dict[str, Any]]) -> None:
    _, doc = bench
    per = doc["timing"]["per_rows"]
    assert list(per) == [str(n) for n in QUICK_SIZES]
    for rows, r in per.items():
        assert r["rows_read"] == int(rows) and r["files_read"] >= 1
        assert r["logs"]["bytes"] > 0 and r["html_bytes"] > 0
        assert all(_seconds(r[p]) for p in PARTS), r
        assert r["total_s"] >= r["detect_drift_s"] and _seconds(r["run_monitor_s"])
        assert r["status"] in ("ok", "drift")
    assert all(_seconds(s) for s in doc["evidently_import_s"])


@pytest.mark.slow
def test_rates_are_shares_of_the_windows_and_targets_say_met(bench: tuple[Path, dict[str, Any]]) -> None:
    _, doc = bench
    w = doc["windows"]
    assert w["false_alarm"]["windows"] == w["detection"]["windows"] == QUICK_WINDOWS
    for key in ("false_alarm_rate", "detection_rate"):
        assert 0.0 <= doc[key] <= 1.0
    assert doc["false_alarm_rate"] == w["false_alarm"]["rate"]
    assert doc["detection_rate"] == w["detection"]["rate"]
    assert set(doc["targets"]) == {"judge_s", "false_alarm_rate", "detection_rate"}
    assert all(isinstance(t["met"], bool) for t in doc["targets"].values())
    assert doc["machine"]["cores"] >= 1 and doc["machine"]["evidently"]
    assert {"distribution", "reference", "no_drift_windows", "shift_windows", "alarm"} <= set(doc["method"])
    check = doc["false_alarm_cross_check"]
    agreement = check["agreement_with_detect_drift"]
    assert agreement["windows"] == QUICK_WINDOWS and agreement["same_columns_flagged"] == agreement["windows"]
    for part in ("bench_reference", "other_references"):
        assert check[part]["windows"] > 0 and 0.0 <= check[part]["rate"] <= 1.0


def test_each_feature_is_shifted_both_ways() -> None:
    seen = {shifted_feature(k, features=30) for k in range(60)}
    assert seen == {(j, s) for j in range(30) for s in (1.0, -1.0)}


def test_wilson_interval_holds_the_rate() -> None:
    low, high = wilson(0, 100)
    assert low == 0.0 and high == pytest.approx(0.037, abs=1e-3)
    low, high = wilson(95, 100)
    assert low < 0.95 < high <= 1.0


def test_rates_count_alarms_and_catches_naming_the_shifted_column() -> None:
    features = ("a", "b")
    results = [
        {
            "kind": "null",
            "k": 0,
            "status": "ok",
            "drifted": [],
            "shifted": None,
            "caught": False,
            "detect_drift_s": 1.0,
        },
        {
            "kind": "null",
            "k": 1,
            "status": "drift",
            "drifted": ["b"],
            "shifted": None,
            "caught": False,
            "detect_drift_s": 1.0,
        },
        {
            "kind": "shift",
            "k": 0,
            "status": "drift",
            "drifted": ["a"],
            "shifted": "a",
            "caught": True,
            "detect_drift_s": 1.0,
        },
        {
            "kind": "shift",
            "k": 1,
            "status": "drift",
            "drifted": ["a", "prediction"],
            "shifted": "b",
            "caught": False,
            "detect_drift_s": 2.0,
        },
    ]
    r = rates(results, features=features)
    assert r["false_alarm"]["rate"] == 0.5 and r["false_alarm"]["alarmed_columns"] == ["b"]
    assert r["detection"]["rate"] == 0.5 and r["detection"]["per_feature"]["b"] == {"windows": 1, "caught": 0}
    assert r["detection"]["other_columns_flagged"] == 2 and r["detection"]["prediction_flagged_windows"] == 1
