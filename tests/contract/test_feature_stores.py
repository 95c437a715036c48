"""The FeatureStore contract, run by the in-memory fake, Feast with SQLite online, and Feast with Redis online.

Every backend serves the breast-cancer-feast example (569 patients, three visits each: 0.90x, 0.95x and 1.0x
the dataset's row), applied and materialized once per backend (class-scoped `backend` fixture). Given that
store, each test asks one thing of the contract: the feature order, point-in-time rows, the latest values
online, missing entities by key, the definition hashes, cached apply/materialize, and the skew check.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from slipway.features.base import EVENT_TIMESTAMP, FeatureStore
from slipway.features.fake import FakeDefinition, FakeFeatureStore
from slipway.features.feast_repo import online_store_override
from slipway.features.feast_store import FeastFeatureStore
from slipway.features.skew import SkewVerdict, check_skew
from tests.support.feast_example import (
    FEATURES,
    MATERIALIZE_END,
    SERVICE,
    VIEWS,
    change_one_definition,
    copy_example,
    retag,
    visit_time,
    visit_values,
    visits,
)
from tests.support.redis import redis_binary, redis_server

SKEWED = "mean_radius"
SKEW_FACTOR = 1.1
SKEWED_PATIENTS = (2, 4)


@dataclass
class Backend:
    """An applied and materialized store, and how to make a changed one or write a skewed value."""

    store: FeatureStore
    visits: pd.DataFrame
    make_store: Any  # (folder) -> an applied store of the same service with one definition changed or not


class FeatureStoreContract(ABC):
    """The behaviour every feature store shares; subclasses provide `backend` and `write_skewed`."""

    @abstractmethod
    @pytest.fixture(scope="class")
    def backend(self, tmp_path_factory: pytest.TempPathFactory) -> Backend:
        """The example served by this backend, applied and materialized up to MATERIALIZE_END."""

    @abstractmethod
    def write_online(
        self, backend: Backend, patients: tuple[int, ...], *, factor: float, later_s: int
    ) -> None:
        """Writes the patients' latest visit, SKEWED x `factor`, into the online store as an event `later_s`
        seconds after that visit (Feast's Redis store keeps a write only when its event is newer)."""

    def test_features_are_the_service_order_and_keys_the_entity_join_keys(self, backend: Backend) -> None:
        assert backend.store.features() == FEATURES
        assert backend.store.entity_keys() == ("patient_id",)

    def test_historical_rows_get_the_value_valid_at_their_timestamp(self, backend: Backend) -> None:
        between = visit_time(3, 0) + timedelta(days=10)  # after visit 0, before visit 1
        entities = pd.DataFrame(
            {
                "patient_id": [3, 3, 7, 5, 3, 3],
                EVENT_TIMESTAMP: [
                    between,
                    visit_time(3, 1),
                    visit_time(7, 2) + timedelta(days=1),
                    visit_time(5, 0) - timedelta(days=1),
                    visit_time(3, 2),
                    visit_time(3, 1),  # the same key and time as row 1: the same answer
                ],
                "diagnosis": ["a", "b", "c", "d", "e", "f"],
            }
        )
        out = backend.store.historical(entities)
        assert list(out.columns) == ["patient_id", EVENT_TIMESTAMP, "diagnosis", *FEATURES]
        assert out["diagnosis"].tolist() == ["a", "b", "c", "d", "e", "f"]  # same rows, same order
        got = out[list(FEATURES)].to_numpy(dtype=np.float32)
        frame = backend.visits
        np.testing.assert_array_equal(got[0], visit_values(frame, 3, 0))  # not visit 1 or 2 (later)
        np.testing.assert_array_equal(got[1], visit_values(frame, 3, 1))  # at the timestamp: that visit
        np.testing.assert_array_equal(got[2], visit_values(frame, 7, 2))
        assert np.isnan(got[3]).all()  # before the patient's first visit: nothing valid
        np.testing.assert_array_equal(got[4], visit_values(frame, 3, 2))
        np.testing.assert_array_equal(got[5], visit_values(frame, 3, 1))

    def test_online_holds_the_latest_values_in_feature_order(self, backend: Backend) -> None:
        rows = backend.store.online([{"patient_id": 10}, {"patient_id": np.int64(3)}])
        assert rows.features == FEATURES and rows.values.dtype == np.float32 and rows.values.shape == (2, 30)
        np.testing.assert_array_equal(rows.values[0], visit_values(backend.visits, 10, 2))
        np.testing.assert_array_equal(rows.values[1], visit_values(backend.visits, 3, 2))
        assert rows.found.tolist() == [True, True] and rows.missing == ()

    def test_a_missing_entity_is_a_row_named_by_its_key(self, backend: Backend) -> None:
        rows = backend.store.online([{"patient_id": 1}, {"patient_id": 10**6}])
        assert rows.found.tolist() == [True, False]
        assert np.isnan(rows.values[1]).all() and not np.isnan(rows.values[0]).any()
        (miss,) = rows.missing
        assert (miss.index, miss.key, miss.absent) == (1, {"patient_id": 10**6}, FEATURES)
        assert "patient_id=1000000" in miss.describe()

    def test_service_hash_is_stable_and_a_changed_definition_changes_it(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        first = backend.store.service_hash()
        assert re.fullmatch(r"[0-9a-f]{64}", first) and backend.store.service_hash() == first
        versions = backend.store.view_versions()
        assert backend.store.view_versions() == versions
        changed = backend.make_store(tmp_path / "changed", change=True)
        assert changed.service_hash() != first
        changed_views = {v for v, h in changed.view_versions().items() if versions.get(v) != h}
        assert len(changed_views) == 1  # only the view whose field changed

    def test_apply_and_materialize_again_are_cached_no_ops(self, backend: Backend) -> None:
        assert backend.store.apply().cached
        again = backend.store.materialize(end=MATERIALIZE_END)
        assert again.cached and "already materialized" in again.detail
        later = backend.store.materialize(end=MATERIALIZE_END + timedelta(days=30))
        assert later.cached and "the same rows" in later.detail  # past the data's last event: same content
        assert backend.store.materialized_until() == MATERIALIZE_END

    def test_a_consistent_store_has_no_skew(self, backend: Backend) -> None:
        entities = pd.DataFrame({"patient_id": [*range(40), 3, 3]})  # duplicates are checked once
        report = check_skew(backend.store, entities, atol=1e-6, rtol=1e-5)
        assert report.verdict is SkewVerdict.CONSISTENT, report.lines()
        assert (report.entities, report.compared, report.as_of) == (40, 40 * 30, MATERIALIZE_END.isoformat())

    def test_a_skewed_online_value_is_named_with_both_values(self, backend: Backend) -> None:
        entities = pd.DataFrame({"patient_id": range(8)})
        self.write_online(backend, SKEWED_PATIENTS, factor=SKEW_FACTOR, later_s=1)
        try:
            report = check_skew(backend.store, entities, atol=1e-6, rtol=1e-5)
        finally:  # the other tests read the clean store
            self.write_online(backend, SKEWED_PATIENTS, factor=1.0, later_s=2)
        assert report.verdict is SkewVerdict.SKEWED and report.verdict.exit_code == 1
        column = FEATURES.index(SKEWED)
        expected = {
            p: (
                float(np.float32(visit_values(backend.visits, p, 2)[column] * SKEW_FACTOR)),
                float(visit_values(backend.visits, p, 2)[column]),
            )
            for p in SKEWED_PATIENTS
        }
        got = {m.key["patient_id"]: (m.online, m.historical) for m in report.mismatches}
        assert {m.feature for m in report.mismatches} == {SKEWED}
        assert got == expected  # float32 on both sides, as the model reads them
        assert any(f"patient_id=2: {SKEWED} online" in line for line in report.lines())


class TestFakeFeatureStore(FeatureStoreContract):
    @pytest.fixture(scope="class")
    def backend(self, tmp_path_factory: pytest.TempPathFactory) -> Backend:
        frame = visits()

        def make(folder: Path, *, change: bool = False) -> FeatureStore:
            scales = (("mean_area", 2.0),) if change else ()
            store = FakeFeatureStore(
                definition=FakeDefinition(features=FEATURES, keys=("patient_id",), scales=scales),
                offline=frame,
            )
            store.apply()
            return store

        store = make(Path("unused"))
        assert not store.materialize(end=MATERIALIZE_END).cached
        return Backend(store=store, visits=frame, make_store=make)

    def write_online(
        self, backend: Backend, patients: tuple[int, ...], *, factor: float, later_s: int
    ) -> None:
        assert isinstance(backend.store, FakeFeatureStore)
        for p in patients:
            value = visit_values(backend.visits, p, 2)[FEATURES.index(SKEWED)] * factor
            backend.store.write_online({"patient_id": p}, {SKEWED: float(value)})


class FeastContract(FeatureStoreContract):
    """Feast on a copy of the example; `online` is the online-store override (None: the repo's SQLite)."""

    def feast_backend(self, root: Path, *, online: dict[str, Any] | None) -> Backend:
        def make(folder: Path, *, change: bool = False) -> FeatureStore:
            repo = copy_example(folder / "feature_repo")
            if change:
                change_one_definition(repo)
            store = FeastFeatureStore(
                repo=repo, service=SERVICE, state_dir=folder / "state", online_store=online
            )
            store.apply()
            return store

        store = make(root)
        assert isinstance(store, FeastFeatureStore)
        assert not store.materialize(end=MATERIALIZE_END).cached
        return Backend(store=store, visits=visits(), make_store=make)

    def write_online(
        self, backend: Backend, patients: tuple[int, ...], *, factor: float, later_s: int
    ) -> None:
        assert isinstance(backend.store, FeastFeatureStore)
        frame = backend.visits
        latest = pd.concat(
            [
                frame[(frame["patient_id"] == p) & (frame[EVENT_TIMESTAMP] == visit_time(p, 2))]
                for p in patients
            ]
        )
        latest[SKEWED] = latest[SKEWED] * np.float32(factor)
        latest[EVENT_TIMESTAMP] = latest[EVENT_TIMESTAMP] + pd.Timedelta(seconds=later_s)
        backend.store.feast.write_to_online_store(VIEWS[0], latest)


class TestFeastSqlite(FeastContract):
    @pytest.fixture(scope="class")
    def backend(self, tmp_path_factory: pytest.TempPathFactory) -> Backend:
        return self.feast_backend(tmp_path_factory.mktemp("feast-sqlite"), online=None)

    def test_a_copy_has_the_same_hashes_and_tags_do_not_change_them(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        copy = backend.make_store(tmp_path / "copy")
        assert copy.service_hash() == backend.store.service_hash()
        assert copy.view_versions() == backend.store.view_versions()
        repo = copy_example(tmp_path / "retagged" / "feature_repo")
        retag(repo)
        retagged = FeastFeatureStore(repo=repo, service=SERVICE, state_dir=tmp_path / "state")
        retagged.apply()
        assert retagged.service_hash() == backend.store.service_hash()

    def test_an_edited_repo_is_applied_again_and_a_foreign_write_invalidates_materialize(
        self, backend: Backend, tmp_path: Path
    ) -> None:
        store = backend.make_store(tmp_path / "edit")
        assert store.apply().cached
        (store.repo / "notes.md").write_text("content changes")  # type: ignore[attr-defined]
        assert not store.apply().cached
        assert not store.materialize(end=MATERIALIZE_END).cached
        assert store.materialize(end=MATERIALIZE_END).cached
        self.write_online(
            Backend(store=store, visits=backend.visits, make_store=None), (1,), factor=2.0, later_s=1
        )
        assert not store.materialize(end=MATERIALIZE_END).cached  # the SQLite file changed under it


class TestFeastRedis(FeastContract):
    @pytest.fixture(scope="class")
    def backend(self, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
        redis_binary()
        root = tmp_path_factory.mktemp("feast-redis")
        with redis_server(root / "redis") as url:
            online = online_store_override(url, base_dir=root)
            backend = self.feast_backend(root, online=online)
            assert isinstance(backend.store, FeastFeatureStore)
            assert backend.store.online_id.startswith("redis://127.0.0.1:")
            yield backend


def test_importing_feast_leaves_no_metrics_folder_for_child_processes() -> None:
    """Feast exports PROMETHEUS_MULTIPROC_DIR when imported; model servers a release starts would inherit it and
    share one metrics folder (their /metrics summed). Slipway imports Feast without leaving it behind."""
    import subprocess
    import sys

    code = (
        "import os; from slipway.features.feast_repo import import_feast; import_feast(); import feast; "
        "print(os.environ.get('PROMETHEUS_MULTIPROC_DIR'), os.environ.get('PROMETHEUS_MULTIPROCESS_DIR'))"
    )
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("PROMETHEUS_MULTIPROC")}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["None", "None"], out.stdout + out.stderr[-2000:]
