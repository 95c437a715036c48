"""`compare`: online features vs historical features of the same entities at the same time, a pure function.

"The same time": the online store holds, per entity, its latest row in the last materialization's window
[start, end]; the historical side answers the latest row at or before a timestamp. So `check_skew` asks the
historical side at the materialization end (`materialized_until()`) for each entity: both then name the
entity's latest event at or before that end (a row older than the materialization's start is the one case
where they differ, and rightly shows up as skew). An entity's own timestamps in the checked frame only say
which entities to check.

Rules, in order (each a line of `compare`):
1. inputs that contradict each other (the online rows' features are not `features`; row counts or widths
   differ) -> ERROR;
2. no entity to compare -> ERROR (an empty check proves nothing);
3. both sides are cast to float32 (the model's input type) before comparing;
4. a value the online store lacks (entity unknown, or past its view's TTL) where the historical side has
   one -> the entity is MISSING, named with the absent features; lacking on both sides is no difference;
5. a value online where the historical side has none (NaN), or |online - historical| > atol + rtol *
   |historical| -> a MISMATCH naming the entity, the feature and both values; NaN on both sides is equal,
   infinities are equal when identical;
6. the verdict: CONSISTENT when there is no mismatch and no missing entity, else SKEWED.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import numpy as np
import pandas as pd

from slipway.errors import FeatureStoreError
from slipway.features.base import EVENT_TIMESTAMP, FeatureStore, MissingKey, OnlineRows, check_keys, key_text


class SkewVerdict(StrEnum):
    """What the comparison found; `exit_code` is what `slipway features skew` exits with."""

    CONSISTENT = "consistent"
    SKEWED = "skewed"
    ERROR = "error"

    @property
    def exit_code(self) -> int:
        """Pure; 0 consistent, 1 skewed, 2 error."""
        return {SkewVerdict.CONSISTENT: 0, SkewVerdict.SKEWED: 1, SkewVerdict.ERROR: 2}[self]


@dataclass(frozen=True)
class Mismatch:
    """One value that differs: which entity, which feature, what each side holds (float32, as the model reads)."""

    key: dict[str, Any]
    feature: str
    online: float
    historical: float

    def describe(self) -> str:
        """Pure; one line naming entity, feature and both values."""
        return (
            f"{key_text(self.key)}: {self.feature} online {self.online!r} != historical {self.historical!r}"
        )


@dataclass(frozen=True)
class SkewReport:
    """The verdict with its evidence: every mismatch and missing entity, and what was compared."""

    verdict: SkewVerdict
    reason: str
    entities: int
    features: tuple[str, ...]
    compared: int  # values compared (present on both sides or on the online side)
    atol: float
    rtol: float
    as_of: str | None = None  # the time both sides were read at (ISO), when known
    mismatches: tuple[Mismatch, ...] = field(default=())
    missing: tuple[MissingKey, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        """Pure; JSON-ready."""
        return {
            "verdict": self.verdict.value,
            "reason": self.reason,
            "entities": self.entities,
            "features": list(self.features),
            "compared": self.compared,
            "atol": self.atol,
            "rtol": self.rtol,
            "as_of": self.as_of,
            "mismatches": [
                {
                    "key": m.key,
                    "feature": m.feature,
                    "online": _json(m.online),
                    "historical": _json(m.historical),
                }
                for m in self.mismatches
            ],
            "missing": [{"key": m.key, "absent": list(m.absent)} for m in self.missing],
        }

    def lines(self) -> list[str]:
        """Pure; the verdict line, then one line per missing entity and per mismatch."""
        head = f"feature skew: {self.verdict.value}: {self.reason}"
        return [
            head,
            *(f"  - missing {m.describe()}" for m in self.missing),
            *(f"  - {m.describe()}" for m in self.mismatches),
        ]


def _json(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _error(
    reason: str, *, features: Sequence[str], atol: float, rtol: float, as_of: str | None
) -> SkewReport:
    return SkewReport(SkewVerdict.ERROR, reason, 0, tuple(features), 0, atol, rtol, as_of)


def compare(
    online: OnlineRows,
    historical: np.ndarray,
    *,
    features: Sequence[str],
    keys: Sequence[Mapping[str, Any]],
    atol: float,
    rtol: float,
    as_of: datetime | None = None,
) -> SkewReport:
    """Pure; the rules above over online rows and the historical matrix [n, F] (features order, NaN = none)."""
    when = as_of.isoformat() if as_of is not None else None
    hist = np.asarray(historical, dtype=np.float64)
    n, width = len(keys), len(features)
    if tuple(online.features) != tuple(features):  # 1
        return _error(
            f"online features {list(online.features)} are not {list(features)}",
            features=features,
            atol=atol,
            rtol=rtol,
            as_of=when,
        )
    if online.values.shape != (n, width) or hist.shape != (n, width):
        shapes = f"online {online.values.shape}, historical {hist.shape}, expected {(n, width)}"
        return _error(
            f"row counts or widths differ: {shapes}", features=features, atol=atol, rtol=rtol, as_of=when
        )
    if n == 0:  # 2
        return _error("no entity to compare", features=features, atol=atol, rtol=rtol, as_of=when)
    on = online.values.astype(np.float32).astype(np.float64)  # 3
    hi = hist.astype(np.float32).astype(np.float64)
    present, hist_has = online.present(), ~np.isnan(hi)
    lacking = ~present & hist_has  # 4
    missing = tuple(
        MissingKey(
            int(i), dict(keys[int(i)]), tuple(f for f, lack in zip(features, lacking[i], strict=True) if lack)
        )
        for i in np.flatnonzero(lacking.any(axis=1))
    )
    with np.errstate(invalid="ignore"):  # 5
        close = np.isclose(on, hi, atol=atol, rtol=rtol, equal_nan=True) | (on == hi)
    differs = present & ~close
    mismatches = tuple(
        Mismatch(dict(keys[i]), features[j], float(on[i, j]), float(hi[i, j]))
        for i, j in zip(*np.nonzero(differs), strict=True)
    )
    compared = int(present.sum())
    if not mismatches and not missing:  # 6
        reason = f"{n} entities x {width} features equal within atol {atol:g}, rtol {rtol:g}"
        return SkewReport(SkewVerdict.CONSISTENT, reason, n, tuple(features), compared, atol, rtol, when)
    reason = f"{len(mismatches)} values differ, {len(missing)} of {n} entities missing online"
    return SkewReport(
        SkewVerdict.SKEWED, reason, n, tuple(features), compared, atol, rtol, when, mismatches, missing
    )


def check_skew(
    store: FeatureStore, entities: pd.DataFrame, *, atol: float, rtol: float, as_of: datetime | None = None
) -> SkewReport:
    """Blocking (one historical query, one online read); `compare` for the distinct entities of `entities`
    (join-key columns; other columns ignored), both sides read at `as_of` (default: the last materialization's
    end). FeatureStoreError when nothing was materialized or a key column is missing."""
    features, join_keys = store.features(), store.entity_keys()
    absent = [k for k in join_keys if k not in entities.columns]
    if absent:
        raise FeatureStoreError(f"entity frame lacks join key(s) {absent}; it has {list(entities.columns)}")
    moment = as_of if as_of is not None else store.materialized_until()
    if moment is None:
        raise FeatureStoreError(
            "nothing is materialized into the online store: run `slipway features materialize`"
        )
    distinct = entities[list(join_keys)].drop_duplicates().reset_index(drop=True)
    query = distinct.assign(**{EVENT_TIMESTAMP: pd.Timestamp(moment)})
    historical = store.historical(query)[list(features)].to_numpy(dtype=np.float64)
    keys = check_keys(
        [{str(k): v for k, v in row.items()} for row in distinct.to_dict(orient="records")],
        join_keys=join_keys,
    )
    online = store.online(keys)
    return compare(online, historical, features=features, keys=keys, atol=atol, rtol=rtol, as_of=moment)
