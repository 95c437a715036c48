"""The monitor's pure parts: verdict rules, drift episodes, the recorded reference, logged answers, windows."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.config import QualityGateConfig
from slipway.errors import ModelContractError, MonitorError
from slipway.evaluation.target import Target
from slipway.gate.quality import decide
from slipway.monitoring.decision import monitor_verdict
from slipway.monitoring.drift import ColumnDrift, prediction_column, value_drift_p_values
from slipway.monitoring.episode import episode_step
from slipway.monitoring.logs import output_matrix, row_ids
from slipway.monitoring.reference import build_reference, from_bytes, sample_rows, to_bytes
from slipway.monitoring.report import metrics_text
from slipway.monitoring.run import live_quality, parse_duration
from slipway.monitoring.window import (
    NON_FINITE,
    LiveWindow,
    feature_matrix,
    join_labels,
    predicted_labels,
    read_labels,
)
from slipway.names import Tag


def col(name: str, p: float, *, threshold: float = 0.01, prediction: bool = False) -> ColumnDrift:
    return ColumnDrift(
        column=name,
        statistic="ks",
        p_value=p,
        threshold=threshold,
        reference_rows=500,
        current_rows=1000,
        is_prediction=prediction,
    )


def test_rule_1_a_small_window_is_an_error_never_no_drift() -> None:
    v = monitor_verdict(rows=3, min_rows=100, columns=(), quality=None)
    assert (v.status, v.rule, v.exit_code, v.alarm) == ("error", 1, 2, False)


def test_rule_2_an_untested_column_is_an_error() -> None:
    v = monitor_verdict(rows=500, min_rows=100, columns=(col("a", 0.5), col("b", math.nan)), quality=None)
    assert (v.status, v.rule, v.exit_code) == ("error", 2, 2)


def test_rule_3_labels_that_match_nothing_are_an_error() -> None:
    v = monitor_verdict(rows=500, min_rows=100, columns=(col("a", 0.5),), quality=None, labels_given=40)
    assert (v.status, v.rule) == ("error", 3)


def test_rule_4_drift_names_every_drifted_column_with_its_numbers() -> None:
    cols = (col("a", 1e-9), col("b", 0.3), col("prediction", 1e-4, prediction=True))
    v = monitor_verdict(rows=1000, min_rows=100, columns=cols, quality=None)
    assert (v.status, v.rule, v.exit_code) == ("drift", 4, 1)
    assert [c.column for c in v.drifted] == ["a", "prediction"]
    assert [c["drifted"] for c in v.evidence["columns"]] == [True, False, True]


def test_rule_5_quality_below_a_floor_is_a_breach_and_both_together_are_reported() -> None:
    floors = QualityGateConfig(thresholds={"accuracy": 0.9}, max_regression={})
    bad = decide(
        challenger={"accuracy": 0.7}, champion=None, champion_version=None, cfg=floors, task="binary"
    )
    v = monitor_verdict(
        rows=500, min_rows=100, columns=(col("a", 0.5),), quality=bad, labels_given=500, labels_matched=500
    )
    assert (v.status, v.rule, v.exit_code) == ("breach", 5, 1) and len(v.breached) == 1
    both = monitor_verdict(
        rows=500, min_rows=100, columns=(col("a", 1e-6),), quality=bad, labels_given=5, labels_matched=5
    )
    assert both.status == "drift_and_breach" and both.exit_code == 1


def test_rule_6_no_drift_and_no_breach_is_exit_0() -> None:
    v = monitor_verdict(rows=500, min_rows=100, columns=(col("a", 0.2), col("b", 0.011)), quality=None)
    assert (v.status, v.rule, v.exit_code, v.drifted) == ("ok", 6, 0, ())


def test_an_episode_starts_one_retrain_and_closes_on_a_quiet_window() -> None:
    tags: dict[str, str] = {}
    first = episode_step(alarm=True, tags=tags, report_id="m-1")
    assert (first.retrain, first.rule, first.tags) == (True, 3, {Tag.MONITOR_EPISODE: "m-1"})
    tags |= first.tags
    again = episode_step(alarm=True, tags=tags, report_id="m-2")
    assert (again.retrain, again.rule, again.tags, again.episode) == (False, 2, {}, "m-1")
    quiet = episode_step(alarm=False, tags=tags, report_id="m-3")
    assert (quiet.retrain, quiet.rule, quiet.tags) == (False, 1, {Tag.MONITOR_EPISODE: ""})
    tags |= quiet.tags
    assert episode_step(alarm=True, tags=tags, report_id="m-4").retrain  # a new episode
    assert episode_step(alarm=False, tags={}, report_id="m-5").tags == {}  # nothing to close


def test_the_reference_round_trips_and_samples_deterministically() -> None:
    rng = np.random.default_rng(0)
    keep = sample_rows(1000, max_rows=100, seed=3)
    assert len(keep) == 100 and np.array_equal(keep, sample_rows(1000, max_rows=100, seed=3))
    assert np.array_equal(sample_rows(50, max_rows=100, seed=3), np.arange(50))
    x = rng.normal(size=(100, 3)).astype(np.float32)
    probs = rng.dirichlet([1, 1, 1], size=100)
    ref = build_reference(
        features=("a", "b", "c"), x=x, outputs=probs, task="multiclass", classes=(0, "x", 2)
    )
    back = from_bytes(to_bytes(ref), source="test")
    assert back.features == ("a", "b", "c") and back.classes == ("0", "x", "2")
    assert np.array_equal(back.x, x) and list(back.predictions) == [
        ("0", "x", "2")[i] for i in probs.argmax(1)
    ]
    reg = build_reference(
        features=("a",), x=x[:, :1], outputs=np.arange(100.0), task="regression", classes=()
    )
    assert from_bytes(to_bytes(reg), source="t").predictions.dtype == np.float64
    with pytest.raises(ModelContractError, match="not a drift reference"):
        from_bytes(b"not an npz", source="models:/m/1")


def test_logged_answers_become_outputs_in_class_order_with_nan_where_not_finite() -> None:
    outputs = [
        {"label": "b", "probabilities": {"b": 0.7, "a": 0.3}},
        {"label": None, "probabilities": {"a": None, "b": None}},
        None,
    ]
    got = output_matrix(outputs, task="binary", classes=("a", "b"))
    assert np.allclose(got[0], [0.3, 0.7]) and np.isnan(got[1]).all() and np.isnan(got[2]).all()
    labels = predicted_labels(got, task="binary", classes=("a", "b"))
    assert list(labels) == ["b", NON_FINITE, NON_FINITE]
    values = output_matrix([{"value": 2.5}, {"value": None}], task="regression", classes=())
    assert values[0] == 2.5 and np.isnan(values[1])
    assert row_ids(["r1", "r2", "r2", "r2"]) == ("r1", "r2", "r2#1", "r2#2")


def test_a_batch_whose_schema_no_longer_matches_is_named() -> None:
    frame = pd.DataFrame({"a": [1.0], "c": ["x"]})
    with pytest.raises(MonitorError, match=r"\['b'\]"):
        feature_matrix(frame, features=("a", "b"), source="batch.csv")
    with pytest.raises(MonitorError, match=r"\['c'\] are not numeric"):
        feature_matrix(frame, features=("a", "c"), source="batch.csv")


def test_delayed_labels_join_by_request_id_and_score_against_the_floors(tmp_path: Path) -> None:
    target = Target(task="binary", label="y", classes=(0, 1))
    outputs = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    window = LiveWindow(
        x=np.zeros((4, 2), np.float32), outputs=outputs, request_ids=("a", "b", "c", "d"), source="t"
    )
    path = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["a", "b", "c", "zz"], "y": [0, 1, 1, 0]}).to_csv(path, index=False)
    joined = join_labels(window, read_labels(path, label="y"), target=target)
    assert joined.labels_given == 4 and list(joined.labelled) == [0, 1, 2]  # type: ignore[arg-type]
    quality, metrics = live_quality(
        joined, target=target, gate=QualityGateConfig(thresholds={"accuracy": 0.9})
    )
    assert metrics["accuracy"] == pytest.approx(2 / 3) and quality is not None and not quality.passed
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"id": [1], "y": [0]}).to_csv(bad, index=False)
    with pytest.raises(MonitorError, match="request_id"):
        read_labels(bad, label="y")


def test_durations_and_the_prediction_column_name() -> None:
    assert [parse_duration(t) for t in ("30s", "15m", "1h", "1.5d")] == [30, 900, 3600, 129600]
    with pytest.raises(MonitorError, match="--since '1 hour'"):
        parse_duration("1 hour")
    assert prediction_column(("a", "prediction", "_prediction")) == "__prediction"


def test_evidently_p_values_are_read_by_column() -> None:
    snap = {
        "metrics": [
            {"config": {"type": "evidently:metric_v2:DriftedColumnsCount"}, "value": {"count": 1}},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "a"}, "value": 0.001},
            {"config": {"type": "evidently:metric_v2:ValueDrift", "column": "b"}, "value": None},
        ]
    }
    got = value_drift_p_values(snap)
    assert got["a"] == 0.001 and math.isnan(got["b"]) and set(got) == {"a", "b"}


def test_the_gauges_are_prometheus_text_with_escaped_labels() -> None:
    text = metrics_text(model_name='m"1', version="3", drift=True, drifted=2, breach=False, now=1.5)
    assert 'slipway_monitor_drift{model="m\\"1",version="3"} 1' in text.splitlines()
    assert 'slipway_monitor_drifted_columns{model="m\\"1",version="3"} 2' in text.splitlines()
    assert text.endswith("\n") and "slipway_monitor_quality_breach" in text


def test_the_bench_measures_the_shipped_alpha() -> None:
    from slipway.bench.monitor import ALPHA
    from slipway.config import MonitorConfig

    assert MonitorConfig().alpha == ALPHA
