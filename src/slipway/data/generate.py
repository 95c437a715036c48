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
    """Resample `rows` rows from the reference pool, jitter them, shift them by `drift` std, corrupt them.

    Deterministic for a given seed. Never samples holdout rows.
    """
    if rows < 0:
        raise ValueError(f"rows must be >= 0, got {rows}")
    rng = np.random.default_rng(seed)
    pool = ref.pool
    take = rng.integers(0, len(pool), size=rows)
    frame = pool.iloc[take].reset_index(drop=True).copy()
    feats = list(ref.features)
    std = pool[feats].std().to_numpy()
    values = frame[feats].to_numpy(dtype=np.float64)
    noise = rng.normal(0.0, 1.0, size=values.shape) * std * jitter
    shifted = values + noise + drift * std
    # keep physically non-negative measurements non-negative after jitter
    frame[feats] = np.clip(shifted, 0.0, None)
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
    first = ref.features[0]
    if kind is Corruption.missing_column:
        return frame.drop(columns=[ref.features[3]])
    if kind is Corruption.nulls:
        frame.loc[some, first] = np.nan
    elif kind is Corruption.out_of_range:
        frame.loc[some, ref.features[1]] = ref.pool[ref.features[1]].max() * 10 + 1000.0
    elif kind is Corruption.bad_labels:
        frame.loc[some, ref.label] = 7
    elif kind is Corruption.wrong_type:
        frame[ref.features[2]] = frame[ref.features[2]].astype(object)
        frame.loc[some, ref.features[2]] = "twelve"  # a string that CSV readers do not take for NA
    elif kind is Corruption.empty:
        return frame.iloc[0:0]
    elif kind is Corruption.duplicates:
        dup = frame.iloc[rng.integers(0, n, size=n // 2)] if n else frame
        return pd.concat([frame.iloc[: n - len(dup)], dup], ignore_index=True)
    elif kind is Corruption.flipped_labels:
        frame[ref.label] = 1 - frame[ref.label]
    return frame
