"""A feature-store project's frames and gate over the fake store: point-in-time joins, entity batches, and the
feature_consistency stage (skipped, passed, rejected naming entity, feature and both values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.data.reference import Reference
from slipway.errors import FeatureStoreError
from slipway.evaluation.target import Target
from slipway.features.fake import FakeDefinition, FakeFeatureStore
from slipway.features.joined import entity_batch, join_features
from slipway.names import Tag
from slipway.release.stages.features import check_feature_consistency

FEATURES = ("a", "b")
T0 = pd.Timestamp("2025-01-01", tz="UTC")


def offline() -> pd.DataFrame:
    """Two entities, two events each: values 1,10 then 2,20 (entity 1) and 3,30 then 4,40 (entity 2)."""
    return pd.DataFrame(
        {
            "entity_id": [1, 1, 2, 2],
            "event_timestamp": [T0, T0 + pd.Timedelta(days=10), T0, T0 + pd.Timedelta(days=10)],
            "a": [1.0, 2.0, 3.0, 4.0],
            "b": [10.0, 20.0, 30.0, 40.0],
        }
    )


def store() -> FakeFeatureStore:
    s = FakeFeatureStore(definition=FakeDefinition(features=FEATURES), offline=offline())
    s.apply()
    return s


def test_a_batch_gets_the_values_valid_at_each_rows_time_and_loses_its_own_feature_columns() -> None:
    batch = pd.DataFrame(
        {
            "entity_id": [1, 1, 2],
            "event_timestamp": ["2025-01-05T00:00:00Z", "2025-01-20T00:00:00Z", "2025-01-20T00:00:00Z"],
            "label": [0, 1, 1],
            "a": [99.0, 99.0, 99.0],  # what a batch says is never what the model reads
        }
    )
    joined = join_features(store(), batch, source="batch.csv")
    assert joined["a"].tolist() == [1.0, 2.0, 4.0] and joined["b"].tolist() == [10.0, 20.0, 40.0]
    assert joined["label"].tolist() == [0, 1, 1]


def test_a_row_before_its_entitys_first_event_or_without_keys_is_named() -> None:
    early = pd.DataFrame({"entity_id": [2], "event_timestamp": ["2024-06-01T00:00:00Z"], "label": [1]})
    with pytest.raises(FeatureStoreError, match=r"batch.csv: 1 row\(s\) have no feature values"):
        join_features(store(), early, source="batch.csv")
    with pytest.raises(FeatureStoreError, match=r"missing \['event_timestamp'\]"):
        join_features(store(), early.drop(columns=["event_timestamp"]), source="batch.csv")


def test_an_entity_batch_has_distinct_pool_rows_without_features() -> None:
    pool = pd.DataFrame(
        {"entity_id": range(10), "event_timestamp": [T0] * 10, "a": 1.0, "b": 2.0, "label": [0, 1] * 5}
    )
    ref = Reference(
        pool=pool,
        holdout=pool.iloc[:0],
        features=FEATURES,
        label="label",
        target=Target(task="binary", label="label", classes=(0, 1)),
    )
    batch = entity_batch(ref, rows=25, seed=3)
    assert list(batch.columns) == ["entity_id", "event_timestamp", "label"]
    assert len(batch) == 10 and batch["entity_id"].is_unique
    assert entity_batch(ref, rows=4, seed=3).equals(entity_batch(ref, rows=4, seed=3))


@dataclass
class _Features:
    skew_atol: float = 1e-6
    skew_rtol: float = 1e-5


@dataclass
class _Config:
    features: _Features


@dataclass
class _Ctx:
    """What the stage reads of a ReleaseContext: the config's tolerances and the reference's holdout."""

    holdout: pd.DataFrame
    config: _Config

    def reference(self) -> Any:
        return self


def ctx() -> Any:
    holdout = pd.DataFrame(
        {"entity_id": [1, 2], "event_timestamp": [T0, T0], "a": 0.0, "b": 0.0, "label": [0, 1]}
    )
    return _Ctx(holdout=holdout, config=_Config(features=_Features()))


NOW = datetime(2025, 6, 1, tzinfo=UTC)


def test_the_gate_is_skipped_without_a_store_and_passes_a_consistent_one() -> None:
    assert check_feature_consistency(ctx(), store=None).verdict == "skipped"
    passed = check_feature_consistency(ctx(), store=store(), now=NOW)
    assert passed.verdict == "passed" and passed.value is not None and passed.value.entities == 2
    assert Tag.FEATURE_CONSISTENCY in passed.tags


def test_a_value_written_differently_online_is_rejected_with_entity_feature_and_both_values() -> None:
    s = store()
    s.materialize(end=NOW)
    s.write_online({"entity_id": 2}, {"b": 44.0})  # the online path transformed b: 40 -> 44
    rejected = check_feature_consistency(ctx(), store=s, now=NOW)
    assert rejected.verdict == "rejected" and rejected.value is not None
    (mismatch,) = rejected.value.mismatches
    assert (mismatch.key, mismatch.feature, mismatch.online, mismatch.historical) == (
        {"entity_id": 2},
        "b",
        44.0,
        40.0,
    )
    assert np.isclose(mismatch.online, 44.0)
