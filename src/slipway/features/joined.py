"""A feature-store project's frames: entity rows (join keys, `event_timestamp`, label) joined point-in-time with
the feature service's historical features, written once per content (the release, the gate and the CLI all
read the same joined file).

The reference (`data.reference`) and every batch of such a project carry entities, not features: whatever
feature columns a file has are replaced by the store's (the store is the one definition of a feature).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from slipway.config import PipelineConfig
from slipway.data.batch_io import read_batch
from slipway.data.reference import Reference, load_reference
from slipway.errors import FeatureStoreError
from slipway.features.base import EVENT_TIMESTAMP, FeatureStore
from slipway.hashing import file_sha256
from slipway.settings import Settings


def join_features(store: FeatureStore, frame: pd.DataFrame, *, source: str) -> pd.DataFrame:
    """Blocking (one historical query); `frame`'s rows with the service's features as they were at each row's
    `event_timestamp` (its own feature columns dropped); FeatureStoreError naming `source` when a join key or
    the timestamp is missing, or when a row has no feature value at its time."""
    keys, features = store.entity_keys(), store.features()
    absent = [c for c in (*keys, EVENT_TIMESTAMP) if c not in frame.columns]
    if absent:
        raise FeatureStoreError(
            f"{source}: a feature-store batch carries entity keys and {EVENT_TIMESTAMP!r}; missing {absent} "
            f"(it has {list(frame.columns)[:12]})"
        )
    entities = frame.drop(columns=[f for f in features if f in frame.columns])
    entities[EVENT_TIMESTAMP] = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True)
    joined = store.historical(entities)
    empty = joined[list(features)].isna().all(axis=1)
    if empty.any():
        first = joined.loc[empty, list(keys)].iloc[0].to_dict()
        raise FeatureStoreError(
            f"{source}: {int(empty.sum())} row(s) have no feature values at their {EVENT_TIMESTAMP} (first: {first}); "
            "their entity had no event at or before that time"
        )
    return joined


def joined_file(store: FeatureStore, path: Path, *, work_dir: Path) -> Path:
    """Blocking (applies the repository, cached; one historical query the first time); the joined frame of the
    batch or reference file `path`, as Parquet under `<work>/features/`, named by the file's and the service
    definition's hashes (the same content joins once)."""
    store.apply()
    name = f"{path.stem}-{file_sha256(path)[:12]}-{store.service_hash()[:12]}.parquet"
    out = work_dir / "features" / name
    if out.is_file():
        return out
    joined = join_features(store, read_batch(path), source=str(path))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    joined.to_parquet(tmp, index=False)
    tmp.replace(out)
    return out


def project_reference(cfg: PipelineConfig, *, settings: Settings | None = None) -> Reference:
    """Blocking; the project's reference: `data.reference` as it is, or (features.store: feast) its entity rows
    joined with the feature service's historical features."""
    from slipway.features.factory import make_feature_store

    settings = settings or Settings()
    store = make_feature_store(cfg, settings=settings)
    if store is None:
        return load_reference(cfg.data, base_dir=cfg.base_dir, work_dir=settings.work_path())
    source = cfg.resolve(Path(cfg.data.reference))
    if not source.is_file():
        raise FeatureStoreError(
            f"data.reference: {source} must be a file of entity rows for a feature-store project"
        )
    joined = joined_file(store, source, work_dir=settings.work_path())
    data = cfg.data.model_copy(update={"reference": str(joined)})
    return load_reference(
        data, base_dir=cfg.base_dir, work_dir=settings.work_path(), keep=entity_columns(store)
    )


def entity_batch(ref: Reference, *, rows: int, seed: int) -> pd.DataFrame:
    """Pure; a feature-store batch: `rows` distinct entity rows of the reference pool (keys, timestamp, label;
    at most the pool's size), seeded. Their features are the store's, joined when a release reads the batch."""
    import numpy as np

    pool = ref.pool
    take = np.sort(np.random.default_rng(seed).permutation(len(pool))[: min(rows, len(pool))])
    return pool.iloc[take].drop(columns=list(ref.features)).reset_index(drop=True)


def entity_columns(store: FeatureStore) -> tuple[str, ...]:
    """Blocking (reads the registry); what a feature-store frame keeps beside features and label: join keys, time."""
    return (*store.entity_keys(), EVENT_TIMESTAMP)


def lineage_tags(store: FeatureStore, *, service: str) -> dict[str, str]:
    """Blocking (reads the registry); the version tags that say which feature definitions the model read."""
    import json

    from slipway.names import Tag

    return {
        Tag.FEATURE_SERVICE: service,
        Tag.FEATURE_SERVICE_HASH: store.service_hash(),
        Tag.FEATURE_VIEWS: json.dumps(store.view_versions(), sort_keys=True)[:5000],
    }
