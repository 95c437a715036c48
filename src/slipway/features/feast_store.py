"""The Feast backend: one feature service of a Feast repository (file offline store or any Feast supports;
SQLite or Redis online store, or any other). Feast is imported on first use, never at import time.

`apply` registers the repository's definitions like `feast apply` does (objects removed from the files are
removed from the registry), `materialize` loads the service's views, and both are cached (`cache.py`): the
state file lives under `state_dir` (`<SLIPWAY_HOME>/features/`), the online store's stamp is the SQLite file's
fingerprint or a marker key in Redis. Feast's console output goes to stderr.
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import pandas as pd

from slipway.errors import FeatureStoreError
from slipway.features import feast_repo as fr
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
from slipway.features.cache import MaterializeRecord, StateFile, content_hash, materialize_cached

if TYPE_CHECKING:
    import feast
    from feast import FeatureService
    from feast.repo_config import RepoConfig

_ROW: Final = "__slipway_row__"
_REDIS_MARK: Final = "slipway:features:materialized:"
_PRESENT: Final = 1  # feast FieldStatus.PRESENT
_NUMERIC: Final = frozenset({"float_val", "double_val", "int32_val", "int64_val", "bool_val"})


@contextlib.contextmanager
def _feast_console_to_stderr() -> Iterator[None]:
    with contextlib.redirect_stdout(sys.stderr):
        yield


class FeastFeatureStore(FeatureStore):
    """`service` of the Feast repository `repo`; `online_store` (Feast's mapping) replaces the repository's."""

    def __init__(
        self, *, repo: Path, service: str, state_dir: Path, online_store: dict[str, Any] | None = None
    ) -> None:
        self.repo = repo.resolve()
        self.service_name = service
        self.online_store = online_store
        self.state = StateFile.for_repo(state_dir, self.repo)

    # -- Feast objects (lazy) ----------------------------------------------------------------------------

    @cached_property
    def config(self) -> RepoConfig:
        """Blocking (imports Feast on first use); the repository's config with the override applied."""
        return fr.load_repo_config(self.repo, online_store=self.online_store)

    @cached_property
    def feast(self) -> feast.FeatureStore:
        """Blocking; the underlying `feast.FeatureStore` (for writes Slipway does not wrap, e.g. tests' skew)."""
        fr.import_feast()
        from feast import FeatureStore as Store

        with _feast_console_to_stderr():
            return Store(repo_path=str(self.repo), config=self.config)

    @cached_property
    def facts(self) -> fr.RepoFacts:
        """Blocking (reads feature_store.yaml, not Feast); registry and online-store facts the caches need."""
        return fr.repo_facts(self.repo, online_store=self.online_store)

    @property
    def online_id(self) -> str:
        """The online store's identity (cache entries belong to it)."""
        return self.facts.online_id

    def _service(self) -> FeatureService:
        """The service object, kept: Feast caches its online request plan per object (~18 ms saved a call)."""
        cached: FeatureService | None = self.__dict__.get("_service_obj")
        if cached is not None:
            return cached
        try:
            service = self.feast.get_feature_service(self.service_name)
            self.__dict__["_service_obj"] = service
            return service
        except Exception as exc:
            raise FeatureStoreError(
                f"feature service {self.service_name!r} is not in the registry of {self.repo} "
                f"(run `slipway features apply`): {exc}"
            ) from None

    @cached_property
    def _layout(self) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
        service = self._service()
        names = tuple(f.name for p in service.feature_view_projections for f in p.features)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise FeatureStoreError(f"feature service {self.service_name!r} repeats feature names {dupes}")
        views = tuple(p.name for p in service.feature_view_projections)
        keys: set[str] = set()
        for name in views:
            with contextlib.suppress(Exception):
                keys.update(c.name for c in self.feast.get_feature_view(name).entity_columns)
        return names, tuple(sorted(keys)), views

    # -- the interface ----------------------------------------------------------------------------------

    def features(self) -> tuple[str, ...]:
        return self._layout[0]

    def entity_keys(self) -> tuple[str, ...]:
        return self._layout[1]

    def service_hash(self) -> str:
        return fr.sha256_doc(fr.service_doc(self.feast, self._service()))

    def view_versions(self) -> dict[str, str]:
        return {name: fr.sha256_doc(fr.view_doc(self.feast, name)) for name in self._layout[2]}

    def _content(self) -> str:
        return content_hash(self.repo, exclude=self.facts.generated_files())

    def apply(self, *, force: bool = False) -> StepResult:
        t0 = time.perf_counter()
        content, registry = self._content(), self.facts.registry
        prev = self.state.get("apply", self.online_id)
        cached = (
            prev is not None
            and prev.get("content") == content
            and registry is not None
            and registry.is_file()
        )
        if cached and not force:
            detail = f"content {content[:12]} already applied to {registry} and {self.online_id}"
            return StepResult("apply", True, time.perf_counter() - t0, detail)
        fr.import_feast()
        from feast import repo_operations

        repo = fr.parse_definitions(self.repo, project=self.config.project)
        if not any(s.name == self.service_name for s in repo.feature_services):
            found = [s.name for s in repo.feature_services]
            raise FeatureStoreError(f"{self.repo}: no feature service {self.service_name!r} (found {found})")
        store = self.feast
        try:
            with _feast_console_to_stderr():
                for source in (v.batch_source for v in repo.feature_views if v.batch_source is not None):
                    store._get_provider().validate_data_source(store.config, source)
                split: Any = repo_operations.extract_objects_for_apply_delete  # untyped in Feast
                todo, delete, _, _ = split(store.project, store.registry, repo)
                store.apply(todo, objects_to_delete=delete, partial=False)
        except Exception as exc:
            raise FeatureStoreError(f"{self.repo}: feast apply failed: {type(exc).__name__}: {exc}") from None
        for name in ("_layout", "_service_obj"):  # a new definition: read the service again
            self.__dict__.pop(name, None)
        self.state.put("apply", self.online_id, {"content": content, "at": datetime.now(UTC).isoformat()})
        detail = f"{len(repo.feature_views)} views, {len(repo.feature_services)} services -> {self.online_id}"
        return StepResult("apply", False, time.perf_counter() - t0, detail)

    def materialize(self, *, end: datetime, start: datetime | None = None, force: bool = False) -> StepResult:
        t0 = time.perf_counter()
        begin, end = utc(start) if start is not None else EPOCH, utc(end)
        if begin > end:
            raise FeatureStoreError(f"materialize: start {begin.isoformat()} is after end {end.isoformat()}")
        content = self._content()
        prev = self.state.materialized(self.online_id)
        reason = materialize_cached(prev, content=content, start=begin, end=end, stamp=self._read_stamp())
        if reason is not None and not force:
            return StepResult("materialize", True, time.perf_counter() - t0, reason)
        views = [v for v in self._layout[2] if self._is_batch_view(v)]
        try:
            with _feast_console_to_stderr():
                self.feast.materialize(begin, end, feature_views=views)
        except Exception as exc:
            raise FeatureStoreError(f"materialize {views} failed: {type(exc).__name__}: {exc}") from None
        horizon = self._horizon(views)
        record = MaterializeRecord(
            content=content,
            start=begin.isoformat(),
            end=end.isoformat(),
            horizon=horizon.isoformat() if horizon is not None else None,
            stamp=self._write_stamp(),
        )
        self.state.record_materialized(self.online_id, record)
        detail = f"{len(views)} views up to {end.isoformat()} into {self.online_id}"
        return StepResult("materialize", False, time.perf_counter() - t0, detail)

    def materialized_until(self) -> datetime | None:
        record = self.state.materialized(self.online_id)
        return datetime.fromisoformat(record.end) if record is not None else None

    def historical(self, entities: pd.DataFrame) -> pd.DataFrame:
        features, keys = self.features(), self.entity_keys()
        check_entity_frame(entities, keys=keys, features=features)
        query = entities[list(keys)].copy()
        query[EVENT_TIMESTAMP] = pd.to_datetime(entities[EVENT_TIMESTAMP], utc=True).to_numpy()
        query[_ROW] = np.arange(len(entities))
        # Feast keeps one row per (keys, timestamp) and drops rows no view has a value for, in its own order:
        # ask for each distinct pair once, then give every entity row its pair's answer
        pair = query.groupby([*keys, EVENT_TIMESTAMP], sort=False, dropna=False)[_ROW].transform("first")
        try:
            with _feast_console_to_stderr():
                job = self.feast.get_historical_features(
                    entity_df=query[query[_ROW] == pair], features=self._service()
                )
                found = job.to_df().set_index(_ROW).reindex(pair.to_numpy())
        except Exception as exc:
            raise FeatureStoreError(f"historical features failed: {type(exc).__name__}: {exc}") from None
        out = entities.copy()
        for name in features:
            out[name] = found[name].to_numpy()
        return out

    def online(self, keys: Sequence[Mapping[str, Any]]) -> OnlineRows:
        features, join_keys = self.features(), self.entity_keys()
        rows = check_keys(keys, join_keys=join_keys)
        values = np.full((len(rows), len(features)), np.nan, dtype=np.float32)
        if rows:
            proto = self.feast.get_online_features(features=self._service(), entity_rows=rows).proto
            column = {name: j for j, name in enumerate(proto.metadata.feature_names.val)}
            for j, name in enumerate(features):
                vector = proto.results[column[name]]
                values[:, j] = [
                    _number(v, name) if status == _PRESENT else math.nan
                    for v, status in zip(vector.values, vector.statuses, strict=True)
                ]
        # NaN = absent: not found, past the TTL, null, or (Feast's Redis store) PRESENT with an empty value
        present = ~np.isnan(values)
        found: np.ndarray = np.asarray(present.all(axis=1), dtype=bool)
        missing = tuple(
            MissingKey(
                int(i), rows[i], tuple(f for f, ok in zip(features, present[i], strict=True) if not ok)
            )
            for i in np.flatnonzero(~found)
        )
        return OnlineRows(features=features, values=values, found=found, missing=missing)

    # -- helpers ----------------------------------------------------------------------------------------

    def _is_batch_view(self, name: str) -> bool:
        try:
            self.feast.get_feature_view(name)
        except Exception:
            return False  # on-demand views are computed at read time: nothing to materialize
        return True

    def _horizon(self, views: list[str]) -> datetime | None:
        """The latest event time in the views' local Parquet sources; None when a source is anything else."""
        fr.import_feast()
        from feast import FileSource

        latest: datetime | None = None
        for name in views:
            source = self.feast.get_feature_view(name).batch_source
            if not isinstance(source, FileSource) or "://" in source.path:
                return None
            try:
                path = fr.local_path(self.config, source.path)
                stamps = pd.read_parquet(path, columns=[source.timestamp_field]).iloc[:, 0]
                value = pd.to_datetime(stamps, utc=True).max()
            except Exception:
                return None
            if pd.isna(value):
                continue
            moment = utc(value.to_pydatetime())
            latest = moment if latest is None else max(latest, moment)
        return latest

    def _stamp_key(self) -> str:
        return _REDIS_MARK + self.state.path.stem

    def _read_stamp(self) -> str | None:
        """What the online store holds now, read without Feast: the SQLite file's fingerprint or the Redis marker
        key; None when it cannot tell (the cache then never hits)."""
        facts = self.facts
        if facts.sqlite is not None:
            with contextlib.suppress(OSError):
                st = facts.sqlite.stat()
                return f"{st.st_ino}:{st.st_size}:{st.st_mtime_ns}"
            return None
        if facts.redis is not None:
            with contextlib.suppress(Exception):
                value = fr.redis_client(facts.redis).get(self._stamp_key())
                return value.decode() if value is not None else None
        return None

    def _write_stamp(self) -> str:
        if self.facts.redis is not None:
            token = uuid.uuid4().hex
            with contextlib.suppress(Exception):
                fr.redis_client(self.facts.redis).set(self._stamp_key(), token)
                return token
            return ""
        return self._read_stamp() or ""


def _number(value: Any, name: str) -> float:
    kind = value.WhichOneof("val")
    if kind is None or kind == "null_val":
        return math.nan
    if kind not in _NUMERIC:
        raise FeatureStoreError(f"feature {name!r} is not numeric online ({kind})")
    return float(getattr(value, kind))
