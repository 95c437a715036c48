"""`compare`, rule by rule (the numbers are the rules in slipway/features/skew.py), plus the features config."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from slipway.config import FeaturesConfig, parse_config
from slipway.errors import ConfigError, FeatureStoreError
from slipway.features.base import MissingKey, OnlineRows
from slipway.features.feast_repo import online_store_override
from slipway.features.skew import SkewReport, SkewVerdict, compare

FEATURES = ("a", "b")
KEYS = [{"id": 1}, {"id": 2}, {"id": 3}]
HIST = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]])
AS_OF = datetime(2025, 6, 1, tzinfo=UTC)


def rows(values: np.ndarray, missing: tuple[MissingKey, ...] = ()) -> OnlineRows:
    found = np.ones(len(values), dtype=bool)
    for m in missing:
        found[m.index] = False
    return OnlineRows(features=FEATURES, values=values.astype(np.float32), found=found, missing=missing)


def run(online: OnlineRows, hist: np.ndarray = HIST, **kw: object) -> SkewReport:
    args: dict[str, object] = {"features": FEATURES, "keys": KEYS, "atol": 1e-6, "rtol": 1e-5, "as_of": AS_OF}
    args.update(kw)
    return compare(online, hist, **args)  # type: ignore[arg-type]


def test_1_contradicting_inputs_are_an_error() -> None:
    other = OnlineRows(
        features=("b", "a"), values=HIST.astype(np.float32), found=np.ones(3, bool), missing=()
    )
    assert run(other).verdict is SkewVerdict.ERROR
    short = run(rows(HIST[:2]))
    assert short.verdict is SkewVerdict.ERROR and "differ" in short.reason
    assert run(rows(HIST), HIST[:, :1]).verdict.exit_code == 2


def test_2_no_entity_is_an_error() -> None:
    empty = run(rows(np.zeros((0, 2))), np.zeros((0, 2)), keys=[])
    assert empty.verdict is SkewVerdict.ERROR and "no entity" in empty.reason


def test_3_float32_rounding_is_no_difference() -> None:
    hist = HIST + 1e-9  # float64 detail the float32 model input never sees
    report = run(rows(HIST), hist, atol=0.0, rtol=0.0)
    assert report.verdict is SkewVerdict.CONSISTENT and report.verdict.exit_code == 0
    assert report.compared == 6 and report.as_of == AS_OF.isoformat()


def test_4_a_value_missing_online_names_the_entity_and_features() -> None:
    values = HIST.copy()
    values[1] = np.nan
    report = run(rows(values, (MissingKey(1, {"id": 2}, FEATURES),)))
    assert report.verdict is SkewVerdict.SKEWED and not report.mismatches
    (miss,) = report.missing
    assert (miss.key, miss.absent) == ({"id": 2}, FEATURES)
    assert "missing id=2: no online value for a, b" in "\n".join(report.lines())


def test_4_absent_on_both_sides_is_no_difference() -> None:
    values, hist = HIST.copy(), HIST.copy()
    values[2], hist[2] = np.nan, np.nan  # an entity neither side knows at that time
    report = run(rows(values, (MissingKey(2, {"id": 3}, FEATURES),)), hist)
    assert report.verdict is SkewVerdict.CONSISTENT and report.compared == 4


def test_5_a_difference_beyond_tolerance_names_entity_feature_and_both_values() -> None:
    values = HIST.copy()
    values[0, 1] = 11.0  # 10% off
    values[2, 0] = 3.0 + 2e-5  # within atol + rtol * 3 = 3.1e-5: no mismatch
    report = run(rows(values))
    assert report.verdict is SkewVerdict.SKEWED and report.verdict.exit_code == 1
    (m,) = report.mismatches
    assert (m.key, m.feature, m.online, m.historical) == ({"id": 1}, "b", 11.0, 10.0)
    assert m.describe() == "id=1: b online 11.0 != historical 10.0"
    assert report.to_dict()["mismatches"] == [
        {"key": {"id": 1}, "feature": "b", "online": 11.0, "historical": 10.0}
    ]


def test_5_nan_equals_nan_and_a_value_against_none_is_a_mismatch() -> None:
    values, hist = HIST.copy(), HIST.copy()
    hist[1, 0] = np.nan  # the historical side has no value, online has one
    values[0, 0] = np.inf
    hist[0, 0] = np.inf
    report = run(rows(values), hist)
    (m,) = report.mismatches
    assert (m.key, m.feature, math.isnan(m.historical)) == ({"id": 2}, "a", True)
    assert json.dumps(report.to_dict())  # NaN and infinities are JSON-safe strings
    assert report.to_dict()["mismatches"][0]["historical"] == "nan"


def test_6_consistent_only_without_mismatch_and_missing() -> None:
    assert run(rows(HIST)).verdict is SkewVerdict.CONSISTENT
    assert [v.exit_code for v in SkewVerdict] == [0, 1, 2]


def test_the_features_section_needs_repo_and_service_for_feast() -> None:
    assert FeaturesConfig().store == "none"
    with pytest.raises(ConfigError, match=r"features: .*needs repo and service"):
        parse_config({"features": {"store": "feast"}}, source="x", base_dir=Path("."))
    cfg = parse_config(
        {"features": {"store": "feast", "repo": "feature_repo", "service": "s"}},
        source="x",
        base_dir=Path("/p"),
    )
    assert cfg.resolve(cfg.features.repo) == Path("/p/feature_repo")  # type: ignore[arg-type]


def test_online_store_urls_become_feast_mappings() -> None:
    assert online_store_override("redis://127.0.0.1:6390/2", base_dir=Path("/p")) == {
        "type": "redis",
        "connection_string": "127.0.0.1:6390,db=2",
    }
    assert (
        online_store_override("redis://:s3cret@h", base_dir=Path("/p"))["connection_string"]
        == "h:6379,password=s3cret"
    )
    assert online_store_override("sqlite:///data/o.db", base_dir=Path("/p")) == {
        "type": "sqlite",
        "path": "/p/data/o.db",
    }
    assert online_store_override("sqlite:////abs/o.db", base_dir=Path("/p"))["path"] == "/abs/o.db"
    with pytest.raises(FeatureStoreError, match="use redis://"):
        online_store_override("postgres://x", base_dir=Path("/p"))
