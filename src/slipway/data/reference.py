"""The reference dataset (the project's schema, label and classes) and its fixed holdout.

`data.reference` is a CSV/Parquet file, a folder of them (rows concatenated, files by name), an
http(s) URL (downloaded once into the state folder) or `sklearn:<name>` (a dataset scikit-learn
ships). The holdout is `data.holdout` when set, else a seeded split of the reference (stratified
for classification); every model is judged on the same rows.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from slipway.config import DataConfig
from slipway.data.batch_io import FORMATS, read_batch
from slipway.errors import ConfigError, DataFormatError
from slipway.evaluation.target import Target, make_target, plain_label

SKLEARN_DATASETS = ("breast_cancer", "iris", "wine", "diabetes")
SKLEARN = "sklearn:"


@dataclass(frozen=True)
class Reference:
    """The reference frame split into a training pool and a fixed holdout, with its target."""

    pool: pd.DataFrame
    holdout: pd.DataFrame
    features: tuple[str, ...]
    label: str
    target: Target
    how: str = ""  # how the task was decided (said by `slipway init` and in the release)

    @property
    def task(self) -> str:
        """binary, multiclass or regression."""
        return self.target.task

    def x(self, frame: pd.DataFrame) -> np.ndarray:
        """Pure; the feature matrix of `frame` (float32, the model's input order)."""
        return frame.loc[:, list(self.features)].to_numpy(dtype=np.float32)

    def holdout_xy(self) -> tuple[np.ndarray, np.ndarray]:
        """Holdout features (float32, schema order) and labels (class indices int64, or values float32)."""
        return self.x(self.holdout), self.target.encode(self.holdout[self.label])

    def holdout_hash(self) -> str:
        """sha256 of the holdout rows, so a changed holdout is visible in lineage."""
        blob = pd.util.hash_pandas_object(self.holdout, index=False).to_numpy().tobytes()
        return hashlib.sha256(blob).hexdigest()

    def rows_in_holdout(self, batch: pd.DataFrame) -> list[int]:
        """Pure; positions of batch rows equal to a holdout row (every feature and the label): leaked rows."""
        columns = [*self.features, self.label]
        if any(c not in batch.columns for c in columns) or batch.empty:
            return []

        def keys(frame: pd.DataFrame) -> list[tuple[object, ...]]:
            feats = frame.loc[:, list(self.features)].to_numpy(dtype=np.float64, na_value=np.nan)
            labels = [plain_label(v) if self.target.classification else float(v) for v in frame[self.label]]
            return [(*row.tolist(), lab) for row, lab in zip(feats, labels, strict=True)]

        try:
            seen = set(keys(self.holdout))
            return [i for i, key in enumerate(keys(batch)) if key in seen]
        except (TypeError, ValueError):  # a column that is not numeric: the suite reports it
            return []

    def frame(self) -> pd.DataFrame:
        """Pure; pool and holdout together (the whole reference)."""
        return pd.concat([self.pool, self.holdout], ignore_index=True)


def _sklearn(name: str, label: str) -> pd.DataFrame:
    import sklearn.datasets as ds

    if name not in SKLEARN_DATASETS:
        raise ConfigError(
            f"data.reference sklearn:{name}: not a bundled dataset; one of "
            f"{', '.join(SKLEARN + n for n in SKLEARN_DATASETS)}"
        )
    frame: pd.DataFrame = getattr(ds, f"load_{name}")(as_frame=True).frame
    return frame.rename(columns={"target": label})


def _folder(path: Path) -> pd.DataFrame:
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in FORMATS)
    if not files:
        raise DataFormatError(f"data.reference {path}: a folder with no {'/'.join(sorted(FORMATS))} file")
    frames = [read_batch(p) for p in files]
    for p, f in zip(files[1:], frames[1:], strict=True):
        if list(f.columns) != list(frames[0].columns):
            raise DataFormatError(f"data.reference {p}: its columns differ from {files[0].name}'s")
    return pd.concat(frames, ignore_index=True)


def source_path(reference: str, *, base_dir: Path, work_dir: Path) -> Path | None:
    """Blocking for a URL (downloads once); the local file or folder behind `data.reference` (None: sklearn)."""
    if reference.startswith(SKLEARN):
        return None
    if urllib.parse.urlparse(reference).scheme in ("http", "https"):
        from slipway.data.source import fetch

        return fetch(reference, work_dir=work_dir)
    path = Path(reference).expanduser()
    path = path if path.is_absolute() else (base_dir / path).resolve()
    if not path.exists():
        raise ConfigError(f"data.reference {reference}: no such file or folder ({path})")
    return path


def read_reference(reference: str, *, label: str, base_dir: Path, work_dir: Path) -> pd.DataFrame:
    """Blocking; the whole reference table (file, folder, URL or bundled dataset)."""
    path = source_path(reference, base_dir=base_dir, work_dir=work_dir)
    if path is None:
        return _sklearn(reference.removeprefix(SKLEARN), label)
    return _folder(path) if path.is_dir() else read_batch(path)


def _features(frame: pd.DataFrame, cfg: DataConfig, *, source: str) -> tuple[str, ...]:
    if cfg.label_column not in frame.columns:
        raise ConfigError(
            f"data.label_column {cfg.label_column!r} is not a column of {source} (columns: {list(frame.columns)[:20]})"
        )
    features = cfg.features or [c for c in frame.columns if c != cfg.label_column]
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise ConfigError(f"data.features {missing} are not columns of {source}")
    if cfg.label_column in features:
        raise ConfigError(f"data.features lists the label column {cfg.label_column!r}")
    text = [c for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise ConfigError(
            f"data.features {text} are not numeric in {source}: the model reads float32 features; list only "
            "numeric columns in data.features, or encode these upstream"
        )
    return tuple(str(c) for c in features)


def _split(frame: pd.DataFrame, *, target: Target, fraction: float, seed: int) -> np.ndarray:
    """Pure; a boolean holdout mask, stratified by class for classification."""
    rng = np.random.default_rng(seed)
    index: list[int] = []
    groups = (
        [frame.index.to_numpy()]
        if not target.classification
        else [g.index.to_numpy() for _, g in frame.groupby(frame[target.label].map(str), sort=True)]
    )
    for members in groups:
        n = round(len(members) * fraction)
        index.extend(rng.choice(members, size=n, replace=False).tolist())
    return np.asarray(frame.index.isin(index))


def load_reference(
    cfg: DataConfig,
    *,
    base_dir: Path = Path("."),
    work_dir: Path | None = None,
    keep: tuple[str, ...] = (),
) -> Reference:
    """Blocking (reads the data; cached per content and config); the reference, its target and its holdout.

    `keep`: columns kept beside the features and the label, first (a feature-store project's entity keys and
    event timestamp). ConfigError naming the `data.*` key at fault (missing column, non-numeric feature,
    unknown dataset).
    """
    key = json.dumps(cfg.model_dump(mode="json"), sort_keys=True)
    stamp = ""
    path = None if cfg.reference.startswith(SKLEARN) or "://" in cfg.reference else (base_dir / cfg.reference)
    if path is not None and path.exists():
        stats = [path.stat()] if path.is_file() else [p.stat() for p in sorted(path.iterdir())]
        stamp = ",".join(f"{s.st_size}:{s.st_mtime_ns}" for s in stats)
    return _load(key, str(base_dir.resolve()), str(work_dir or base_dir / ".slipway" / "work"), stamp, keep)


@lru_cache(maxsize=8)
def _load(key: str, base_dir: str, work_dir: str, stamp: str, keep: tuple[str, ...]) -> Reference:
    cfg = DataConfig.model_validate_json(key)
    base = Path(base_dir)
    frame = read_reference(cfg.reference, label=cfg.label_column, base_dir=base, work_dir=Path(work_dir))
    features = _features(frame, cfg, source=cfg.reference)
    absent = [c for c in keep if c not in frame.columns]
    if absent:
        raise ConfigError(
            f"data.reference: {cfg.reference} lacks column(s) {absent} (entity keys, event timestamp)"
        )
    kept = [c for c in keep if c not in features and c != cfg.label_column]
    frame = (
        frame.loc[:, [*kept, *features, cfg.label_column]]
        .dropna(subset=[cfg.label_column])
        .reset_index(drop=True)
    )
    target, how = make_target(frame[cfg.label_column], task=cfg.task, positive_class=cfg.positive_class)
    if target.classification:
        frame[cfg.label_column] = [plain_label(v) for v in frame[cfg.label_column]]
    if cfg.holdout is not None:
        holdout_path = cfg.holdout if cfg.holdout.is_absolute() else (base / cfg.holdout).resolve()
        holdout = read_batch(holdout_path)
        _features(holdout, cfg.model_copy(update={"features": list(features)}), source=str(cfg.holdout))
        holdout = holdout.loc[:, [*kept, *features, cfg.label_column]].reset_index(drop=True)
        target.encode(holdout[cfg.label_column])  # a class the reference lacks is named here
        pool = frame
    else:
        mask = _split(frame, target=target, fraction=cfg.holdout_fraction, seed=cfg.holdout_seed)
        pool, holdout = frame.loc[~mask].reset_index(drop=True), frame.loc[mask].reset_index(drop=True)
    return Reference(
        pool=pool, holdout=holdout, features=features, label=cfg.label_column, target=target, how=how
    )
