"""The batch generator: resampled reference rows with jitter, optional drift and corruptions."""

from __future__ import annotations

from enum import StrEnum

import numpy as np
import pandas as pd

from slipway.data.reference import Reference


class Corruption(StrEnum):
    """Corruption kinds for tests and demos; each must be caught by the validation gate."""

    missing_column = "missing-column"
    nulls = "nulls"
    out_of_range = "out-of-range"
    bad_labels = "bad-labels"
    wrong_type = "wrong-type"
    empty = "empty"
    duplicates = "duplicates"
    flipped_labels = "flipped-labels"


def make_batch(
    ref: Reference,
    *,
    rows: int,
    seed: int,
    drift: float = 0.0,
    jitter: float = 0.02,
    corrupt: Corruption | None = None,
) -> pd.DataFrame:
    """Resample `rows` rows from the reference pool, jitter float features, shift them by `drift` std, corrupt them.

    Deterministic for a given seed. Never samples holdout rows. Integer columns keep integer values;
    a column with no negative value in the reference gets none.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    rng = np.random.default_rng(seed)
    pool = ref.pool
    take = rng.integers(0, len(pool), size=rows)
    frame = pool.iloc[take].reset_index(drop=True).copy()
    for col in ref.features:
        values = frame[col].to_numpy(dtype=np.float64)
        std = float(pool[col].std()) or 0.0
        shifted = values + drift * std
        if pd.api.types.is_float_dtype(pool[col]):
            shifted = shifted + rng.normal(0.0, 1.0, size=values.shape) * std * jitter
        else:
            shifted = np.round(shifted)
        if float(pool[col].min()) >= 0:  # keep non-negative measurements non-negative
            shifted = np.clip(shifted, 0.0, None)
        frame[col] = shifted if pd.api.types.is_float_dtype(pool[col]) else shifted.astype(np.int64)
    if corrupt is not None:
        frame = corrupt_batch(frame, ref=ref, kind=corrupt, rng=rng)
    return frame


def corrupt_batch(
    frame: pd.DataFrame, *, ref: Reference, kind: Corruption, rng: np.random.Generator
) -> pd.DataFrame:
    """Apply one corruption kind; the result is what a broken upstream job would deliver."""
    frame = frame.copy()
    n = len(frame)
    some = rng.choice(n, size=max(1, n // 20), replace=False) if n else np.array([], dtype=int)
    features = list(ref.features)
    first, second, third = features[0], features[1 % len(features)], features[2 % len(features)]
    if kind is Corruption.missing_column:
        return frame.drop(columns=[features[min(3, len(features) - 1)]])
    if kind is Corruption.nulls:
        frame.loc[some, first] = np.nan
    elif kind is Corruption.out_of_range:
        column = ref.pool[second]
        span = float(column.max() - column.min()) or 1.0
        frame[second] = frame[second].astype(np.float64)
        frame.loc[some, second] = float(column.max()) + 10 * span + 1000.0
    elif kind is Corruption.bad_labels:
        frame[ref.label] = frame[ref.label].astype(object)
        labels = frame[ref.label].tolist()
        for i in some:
            labels[int(i)] = _foreign_label(ref)
        frame[ref.label] = pd.Series(labels, dtype=object)
    elif kind is Corruption.wrong_type:
        frame[third] = frame[third].astype(object)
        frame.loc[some, third] = "twelve"  # a string that CSV readers do not take for NA
    elif kind is Corruption.empty:
        return frame.iloc[0:0]
    elif kind is Corruption.duplicates:
        dup = frame.iloc[rng.integers(0, n, size=n // 2)] if n else frame
        return pd.concat([frame.iloc[: n - len(dup)], dup], ignore_index=True)
    elif kind is Corruption.flipped_labels:
        frame[ref.label] = flip_labels(frame[ref.label], ref=ref)
    return frame


def _foreign_label(ref: Reference) -> object:
    """A label the suite must refuse: an unknown class, or a value far outside the regression range."""
    if not ref.target.classification:
        column = ref.pool[ref.label]
        return float(column.max()) + 10 * float(column.max() - column.min()) + 1000.0
    classes = ref.target.classes
    if all(isinstance(c, int) for c in classes):
        return max(int(c) for c in classes) + 7
    return "not-a-class"


def flip_labels(labels: pd.Series, *, ref: Reference) -> pd.Series:
    """Pure; classification: every class moved to the next one (a cyclic permutation, no fixed point);
    regression: each value mirrored around the reference's label mean."""
    if not ref.target.classification:
        mean = float(ref.pool[ref.label].mean())
        return 2 * mean - labels.astype(np.float64)
    classes = list(ref.target.classes)
    shift = {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
    return labels.map(lambda v: shift.get(v, v))
