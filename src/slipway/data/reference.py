"""The reference dataset (scikit-learn's bundled breast-cancer data) and its fixed holdout."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pandas as pd

from slipway.config import DataConfig


@dataclass(frozen=True)
class Reference:
    """The reference frame split into a training pool and a fixed holdout."""

    pool: pd.DataFrame
    holdout: pd.DataFrame
    features: tuple[str, ...]
    label: str

    def holdout_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Holdout features (float32, schema order) and labels (int64)."""
        x = self.holdout.loc[:, list(self.features)].to_numpy(dtype=np.float32)
        return x, self.holdout[self.label].to_numpy(dtype=np.int64)

    def holdout_hash(self) -> str:
        """sha256 of the holdout rows, so a changed holdout is visible in lineage."""
        blob = pd.util.hash_pandas_object(self.holdout, index=False).to_numpy().tobytes()
        return hashlib.sha256(blob).hexdigest()


@lru_cache(maxsize=4)
def _breast_cancer(label: str) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    frame: pd.DataFrame = load_breast_cancer(as_frame=True).frame
    return frame.rename(columns={"target": label}).astype({label: "int64"})


def load_reference(cfg: DataConfig) -> Reference:
    """Load the reference data and split it, stratified by label, with the configured seed."""
    frame = _breast_cancer(cfg.label_column)
    rng = np.random.default_rng(cfg.holdout_seed)
    holdout_idx: list[int] = []
    for _, group in frame.groupby(cfg.label_column, sort=True):
        n = round(len(group) * cfg.holdout_fraction)
        holdout_idx.extend(rng.choice(group.index.to_numpy(), size=n, replace=False).tolist())
    mask = frame.index.isin(holdout_idx)
    features = tuple(c for c in frame.columns if c != cfg.label_column)
    return Reference(
        pool=frame.loc[~mask].reset_index(drop=True),
        holdout=frame.loc[mask].reset_index(drop=True),
        features=features,
        label=cfg.label_column,
    )
