"""The feature-store interface: one feature service's features, point-in-time historical rows for training,
the latest values online for serving, and the definition hashes a release records as lineage.

Column names are the bare feature names (`mean_radius`, not `tumor_means__mean_radius`): they are the
model's input columns, so names must be unique across the service (Feast refuses duplicates without
full names). `features()` is the model input order: the service's projections in the order it lists them,
each projection's features in its declared order. Backends: Feast (`feast_store.py`, SQLite or Redis
online) and an in-memory fake; all pass `tests/contract/test_feature_stores.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

import numpy as np
import pandas as pd

from slipway.errors import FeatureStoreError

EVENT_TIMESTAMP: Final = "event_timestamp"  # the entity frame's time column (Feast's default name)
EPOCH: Final = datetime(
    1970, 1, 1, tzinfo=UTC
)  # `materialize(start=None)` starts here: every row up to `end`


@dataclass(frozen=True)
class MissingKey:
    """An online row without every feature: its position in the request, its entity key, the absent features."""

    index: int
    key: dict[str, Any]
    absent: tuple[str, ...]

    def describe(self) -> str:
        """Pure; one line naming the entity and what it lacks."""
        what = "every feature" if len(self.absent) > 3 else ", ".join(self.absent)
        return f"{key_text(self.key)}: no online value for {what}"


@dataclass(frozen=True)
class OnlineRows:
    """Online features of a list of entity keys, row i answering key i."""

    features: tuple[str, ...]
    values: np.ndarray  # float32 [n, len(features)] in features() order; NaN where absent
    found: np.ndarray  # bool [n]: every feature present (a stored null counts as absent) for that row
    missing: tuple[MissingKey, ...]  # the rows with found False, in request order

    def present(self) -> np.ndarray:
        """Pure; bool [n, F]: which values the online store answered (not absent, null or past the view's TTL)."""
        mask = np.ones(self.values.shape, dtype=bool)
        column = {name: j for j, name in enumerate(self.features)}
        for miss in self.missing:
            for name in miss.absent:
                mask[miss.index, column[name]] = False
        return mask


@dataclass(frozen=True)
class StepResult:
    """What `apply` or `materialize` did: ran, or found the same work already done (`cached`)."""

    step: Literal["apply", "materialize"]
    cached: bool
    seconds: float
    detail: str  # what ran or why nothing had to

    def line(self) -> str:
        """Pure; one human line."""
        return f"{self.step}: {'cached, nothing to do' if self.cached else 'done'} in {self.seconds:.2f} s ({self.detail})"


class FeatureStore(ABC):
    """One feature service of one feature repository, with its offline (historical) and online sides."""

    @abstractmethod
    def features(self) -> tuple[str, ...]:
        """Blocking (reads the registry once); the service's feature names in model input order. FeatureStoreError
        when the service is unknown (not applied)."""

    @abstractmethod
    def entity_keys(self) -> tuple[str, ...]:
        """Blocking (registry); the join keys a row needs (every entity of the service's views), sorted."""

    @abstractmethod
    def service_hash(self) -> str:
        """Blocking (registry); sha256 of the service's canonical definition: what values come out (see
        `feast_repo.service_doc`). Stable across calls and copies of the repo; a changed field, dtype, source,
        TTL, entity or transformation changes it; descriptions, tags and owners do not."""

    @abstractmethod
    def view_versions(self) -> dict[str, str]:
        """Blocking (registry); per feature view of the service, the sha256 of its canonical definition."""

    @abstractmethod
    def apply(self, *, force: bool = False) -> StepResult:
        """Blocking; registers the repository's definitions (and creates online tables). Idempotent: unchanged
        content already applied to this registry and online store is a cached no-op unless `force`.
        FeatureStoreError when the definitions do not load or the service is not among them."""

    @abstractmethod
    def materialize(self, *, end: datetime, start: datetime | None = None, force: bool = False) -> StepResult:
        """Blocking; loads each entity's latest row with start <= event time <= end (start None: every row) into
        the online store. Idempotent: the same content and window (or any end past the data's last event, once
        materialized) into the same online store is a cached no-op unless `force`. Naive datetimes are UTC."""

    @abstractmethod
    def materialized_until(self) -> datetime | None:
        """Non-blocking (state file); the end of the last materialization into this online store, None if none."""

    @abstractmethod
    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        """Blocking; `entities` (join keys + `event_timestamp`, any other columns such as labels) with the
        features added, same rows in the same order; each value is the one valid at the row's timestamp
        (latest event <= timestamp, within the view's TTL), NaN when none is. FeatureStoreError when a key
        column or the timestamp is missing, or a feature column already exists."""

    @abstractmethod
    def online(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        """Blocking (one online-store read); the latest materialized values of each key, in features() order.
        Unknown entities are rows with found False and a `missing` entry, never an error; FeatureStoreError
        when a key lacks a join key."""


def utc(moment: datetime) -> datetime:
    """Pure; `moment` as an aware UTC datetime (naive ones are taken as UTC)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def check_entity_frame(entities: pd.DataFrame, *, keys: Sequence[str], features: Sequence[str]) -> None:
    """Pure; FeatureStoreError naming the missing key/timestamp columns or the feature columns already present."""
    absent = [c for c in (*keys, EVENT_TIMESTAMP) if c not in entities.columns]
    if absent:
        raise FeatureStoreError(f"entity frame lacks column(s) {absent}; it has {list(entities.columns)}")
    clash = [c for c in features if c in entities.columns]
    if clash:
        raise FeatureStoreError(f"entity frame already has feature column(s) {clash}: drop them first")


def check_keys(keys: Sequence[Mapping[str, Any]], *, join_keys: Sequence[str]) -> list[dict[str, Any]]:
    """Pure; the keys as plain dicts of Python scalars restricted to `join_keys`; FeatureStoreError naming the
    first key that lacks one."""
    rows = []
    for i, key in enumerate(keys):
        absent = [k for k in join_keys if k not in key]
        if absent:
            raise FeatureStoreError(f"entity key {i} ({dict(key)}) lacks join key(s) {absent}")
        rows.append({k: _plain(key[k]) for k in join_keys})
    return rows


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def key_text(key: Mapping[str, Any]) -> str:
    """Pure; `patient_id=3` (several keys comma-separated), as messages name an entity."""
    return ", ".join(f"{k}={v!r}" for k, v in key.items())
