"""An in-memory feature store for tests: an offline frame (keys, `event_timestamp`, raw feature values), a
definition (features, keys, TTL, per-feature scale factors as its "transformations"), an online dict.

It keeps the contract of `base.FeatureStore` (tests/contract/test_feature_stores.py) with Feast's semantics:
point-in-time = the latest row at or before the timestamp and, with a TTL, no older than timestamp - TTL;
materialize = each entity's latest row in [start, end]. `write_online` plays a serving path that writes
something else (a skewed store).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from slipway.errors import FeatureStoreError
from slipway.features.base import (
    EPOCH,
    EVENT_TIMESTAMP,
    FeatureStore,
    MissingKey,
    OnlineRows,
    StepResult,
    check_entity_frame,
    check_keys,
    utc,
)
from slipway.features.cache import MaterializeRecord, materialize_cached
from slipway.features.feast_repo import sha256_doc


@dataclass(frozen=True)
class FakeDefinition:
    """What the fake's one view serves: feature names (in order), join keys, TTL, and per-feature scale factors
    applied to the offline values on both paths (a transformation: changing one changes the hashes)."""

    features: tuple[str, ...]
    keys: tuple[str, ...] = ("entity_id",)
    ttl: timedelta | None = None
    scales: tuple[tuple[str, float], ...] = ()
    view: str = "fake_view"
    service: str = "fake_service"

    def doc(self) -> dict[str, Any]:
        """Pure; the canonical document the hashes cover."""
        doc = asdict(self)
        doc["ttl"] = self.ttl.total_seconds() if self.ttl is not None else None
        return doc


class FakeFeatureStore(FeatureStore):
    """One view and one service over an in-memory offline frame."""

    def __init__(self, *, definition: FakeDefinition, offline: pd.DataFrame) -> None:
        check_entity_frame(offline[[*definition.keys, EVENT_TIMESTAMP]], keys=definition.keys, features=())
        self.definition = definition
        frame = offline.copy()
        frame[EVENT_TIMESTAMP] = pd.to_datetime(frame[EVENT_TIMESTAMP], utc=True)
        for name, factor in definition.scales:
            frame[name] = frame[name] * factor
        self._offline = frame.sort_values(EVENT_TIMESTAMP, kind="stable").reset_index(drop=True)
        self._online: dict[tuple[Any, ...], np.ndarray] = {}
        self._applied: str | None = None
        self._materialized: MaterializeRecord | None = None
        self._writes = 0  # the online store's stamp: any write outside materialize changes it

    def features(self) -> tuple[str, ...]:
        self._require_applied()
        return self.definition.features

    def entity_keys(self) -> tuple[str, ...]:
        self._require_applied()
        return tuple(sorted(self.definition.keys))

    def service_hash(self) -> str:
        self._require_applied()
        return sha256_doc(
            {"service": self.definition.service, "views": {self.definition.view: self.definition.doc()}}
        )

    def view_versions(self) -> dict[str, str]:
        self._require_applied()
        return {self.definition.view: sha256_doc(self.definition.doc())}

    def apply(self, *, force: bool = False) -> StepResult:
        digest = sha256_doc(self.definition.doc())
        if self._applied == digest and not force:
            return StepResult("apply", True, 0.0, f"definition {digest[:12]} already applied")
        self._applied = digest
        return StepResult("apply", False, 0.0, f"1 view, 1 service ({digest[:12]})")

    def materialize(self, *, end: datetime, start: datetime | None = None, force: bool = False) -> StepResult:
        self._require_applied()
        t0 = time.perf_counter()
        begin, end = utc(start) if start is not None else EPOCH, utc(end)
        if begin > end:
            raise FeatureStoreError(f"materialize: start {begin.isoformat()} is after end {end.isoformat()}")
        content = self._applied or ""
        reason = materialize_cached(
            self._materialized, content=content, start=begin, end=end, stamp=str(self._writes)
        )
        if reason is not None and not force:
            return StepResult("materialize", True, time.perf_counter() - t0, reason)
        stamps = self._offline[EVENT_TIMESTAMP]
        window = self._offline[(stamps >= pd.Timestamp(begin)) & (stamps <= pd.Timestamp(end))]
        latest = window.groupby(list(self.definition.keys), sort=False).tail(1)
        for _, row in latest.iterrows():
            key = tuple(row[k].item() if hasattr(row[k], "item") else row[k] for k in self.definition.keys)
            self._online[key] = row[list(self.definition.features)].to_numpy(dtype=np.float32)
        horizon = stamps.max() if len(stamps) else None
        self._materialized = MaterializeRecord(
            content=content,
            start=begin.isoformat(),
            end=end.isoformat(),
            horizon=horizon.to_pydatetime().isoformat() if horizon is not None else None,
            stamp=str(self._writes),
        )
        return StepResult("materialize", False, time.perf_counter() - t0, f"{len(latest)} entities")

    def materialized_until(self) -> datetime | None:
        record = self._materialized
        return datetime.fromisoformat(record.end) if record is not None else None

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        features, keys = self.features(), self.entity_keys()
        check_entity_frame(entities, keys=keys, features=features)
        at = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)
        values = np.full((len(entities), len(features)), np.nan)
        groups = dict(iter(self._offline.groupby(list(keys), sort=False)))
        for i in range(len(entities)):
            group = groups.get(_group_key(entities.iloc[i], keys))
            if group is None:
                continue
            valid = group[group[EVENT_TIMESTAMP] <= at.iloc[i]]
            if self.definition.ttl:
                valid = valid[valid[EVENT_TIMESTAMP] >= at.iloc[i] - self.definition.ttl]
            if len(valid):
                values[i] = valid.iloc[-1][list(features)].to_numpy(dtype=np.float64)
        out = entities.copy()
        for j, name in enumerate(features):
            out[name] = values[:, j]
        return out

    def online(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        features = self.features()
        rows = check_keys(keys, join_keys=self.definition.keys)
        values = np.full((len(rows), len(features)), np.nan, dtype=np.float32)
        for i, row in enumerate(rows):
            stored = self._online.get(tuple(row[k] for k in self.definition.keys))
            if stored is not None:
                values[i] = stored
        present = ~np.isnan(values)  # a null value is absent, as Feast answers it
        found: np.ndarray = np.asarray(present.all(axis=1), dtype=bool)
        missing = tuple(
            MissingKey(
                int(i), rows[i], tuple(f for f, ok in zip(features, present[i], strict=True) if not ok)
            )
            for i in np.flatnonzero(~found)
        )
        return OnlineRows(features=features, values=values, found=found, missing=missing)

    def write_online(self, key: Mapping[str, Any], values: Mapping[str, float]) -> None:
        """Non-blocking; overwrites some online values of one entity (what a skewed serving path would do)."""
        row = check_keys([key], join_keys=self.definition.keys)[0]
        stored = self._online.setdefault(
            tuple(row[k] for k in self.definition.keys),
            np.full(len(self.definition.features), np.nan, dtype=np.float32),
        )
        for name, value in values.items():
            stored[self.definition.features.index(name)] = value
        self._writes += 1

    def _require_applied(self) -> None:
        if self._applied is None:
            raise FeatureStoreError(f"feature service {self.definition.service!r} is not applied")


def _group_key(row: pd.Series, keys: Sequence[str]) -> Any:
    return tuple(
        row[k].item() if hasattr(row[k], "item") else row[k] for k in keys
    )  # pandas 2 groups by tuples
