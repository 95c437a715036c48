"""Unit tests: the reference split, the batch generator, batch files and the expectation suite."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from slipway.config import DataConfig
from slipway.data.batch_io import batch_format, read_batch, write_batch
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import Reference, load_reference
from slipway.errors import ConfigError, DataFormatError
from slipway.hashing import file_sha256
from slipway.validation.suite import (
    SUPPORTED_TYPES,
    ExpectationSpec,
    SuiteSpec,
    build_reference_suite,
    load_suite,
    save_suite,
    suite_hash,
)

TOTAL_ROWS = 569  # scikit-learn's breast-cancer data


def row_hashes(frame: pd.DataFrame) -> set[int]:
    return set(pd.util.hash_pandas_object(frame, index=False).tolist())


@pytest.fixture(scope="module")
def suite(ref: Reference) -> SuiteSpec:
    return build_reference_suite(ref, name="breast_cancer", version=1)


def by_type(suite: SuiteSpec, type_: str) -> list[ExpectationSpec]:
    return [e for e in suite.expectations if e.type == type_]


# --- data.reference ---------------------------------------------------------------------------


class TestReference:
    def test_pool_and_holdout_partition_the_dataset(self, ref: Reference) -> None:
        pool, holdout = row_hashes(ref.pool), row_hashes(ref.holdout)
        assert len(ref.pool) + len(ref.holdout) == TOTAL_ROWS
        assert len(pool) + len(holdout) == TOTAL_ROWS  # no row repeated within either part
        assert pool.isdisjoint(holdout)

    def test_holdout_is_stratified_by_label(self, ref: Reference) -> None:
        label = ref.label
        full = pd.concat([ref.pool, ref.holdout])[label].value_counts()
        held = ref.holdout[label].value_counts()
        assert set(held.index) == set(full.index) == {0, 1}
        for cls, count in full.items():
            assert held[cls] == round(count * DataConfig().holdout_fraction)

    def test_schema_is_features_then_label(self, ref: Reference) -> None:
        assert ref.label == "target"
        assert len(ref.features) == 30
        assert list(ref.pool.columns) == [*ref.features, ref.label]
        assert list(ref.holdout.columns) == list(ref.pool.columns)

    def test_same_seed_gives_same_split(self, ref: Reference) -> None:
        again = load_reference(DataConfig())
        pd.testing.assert_frame_equal(again.holdout, ref.holdout)
        pd.testing.assert_frame_equal(again.pool, ref.pool)

    def test_other_seed_or_fraction_gives_other_holdout(self, ref: Reference) -> None:
        other_seed = load_reference(DataConfig(holdout_seed=8))
        other_fraction = load_reference(DataConfig(holdout_fraction=0.2))
        assert row_hashes(other_seed.holdout) != row_hashes(ref.holdout)
        assert other_seed.holdout_hash() != ref.holdout_hash()
        assert len(other_fraction.holdout) < len(ref.holdout)

    def test_holdout_hash_is_stable_and_content_addressed(self, ref: Reference) -> None:
        digest = ref.holdout_hash()
        assert len(digest) == 64
        assert int(digest, 16) >= 0
        assert load_reference(DataConfig()).holdout_hash() == digest
        tampered = ref.holdout.copy()
        tampered.loc[0, ref.features[0]] += 1e-9
        changed = Reference(ref.pool, tampered, ref.features, ref.label, ref.target)
        assert changed.holdout_hash() != digest

    def test_holdout_xy_is_model_ready(self, ref: Reference) -> None:
        x, y = ref.holdout_xy()
        assert x.shape == (len(ref.holdout), len(ref.features))
        assert (x.dtype, y.dtype) == (np.float32, np.int64)
        np.testing.assert_array_equal(y, ref.holdout[ref.label].to_numpy())


# --- data.generate ----------------------------------------------------------------------------


class TestMakeBatch:
    def test_same_seed_same_batch(self, ref: Reference) -> None:
        pd.testing.assert_frame_equal(
            make_batch(ref, rows=200, seed=3, drift=0.3),
            make_batch(ref, rows=200, seed=3, drift=0.3),
        )

    def test_other_seed_other_batch(self, ref: Reference) -> None:
        a, b = make_batch(ref, rows=200, seed=3), make_batch(ref, rows=200, seed=4)
        assert row_hashes(a).isdisjoint(row_hashes(b))

    @pytest.mark.parametrize("rows", [0, 1, 123])
    def test_row_count_and_schema(self, ref: Reference, rows: int) -> None:
        frame = make_batch(ref, rows=rows, seed=1)
        assert len(frame) == rows
        assert list(frame.columns) == list(ref.pool.columns)
        assert str(frame[ref.label].dtype) == "int64"
        assert all(str(frame[c].dtype) == "float64" for c in ref.features)

    def test_negative_rows_rejected(self, ref: Reference) -> None:
        with pytest.raises(ValueError, match="rows must be >= 0"):
            make_batch(ref, rows=-1, seed=1)

    def test_without_jitter_every_row_is_a_pool_row_never_a_holdout_row(self, ref: Reference) -> None:
        batch = row_hashes(make_batch(ref, rows=500, seed=9, jitter=0.0))
        assert batch <= row_hashes(ref.pool)
        assert batch.isdisjoint(row_hashes(ref.holdout))

    def test_jitter_keeps_measurements_non_negative(self, ref: Reference) -> None:
        frame = make_batch(ref, rows=2000, seed=2, jitter=0.5)
        assert (frame[list(ref.features)] >= 0).all().all()

    @pytest.mark.parametrize("drift", [0.0, 1.0])
    def test_drift_shifts_feature_means_by_drift_std(self, ref: Reference, drift: float) -> None:
        feats = list(ref.features)
        frame = make_batch(ref, rows=3000, seed=11, drift=drift)
        shift = (frame[feats].mean() - ref.pool[feats].mean()) / ref.pool[feats].std()
        assert shift.between(drift - 0.1, drift + 0.1).all(), shift.describe()

    def test_drift_leaves_labels_alone(self, ref: Reference) -> None:
        plain, drifted = (
            make_batch(ref, rows=300, seed=5),
            make_batch(ref, rows=300, seed=5, drift=2.0),
        )
        pd.testing.assert_series_equal(plain[ref.label], drifted[ref.label])

    def test_flipped_labels_flip_every_label_and_nothing_else(self, ref: Reference) -> None:
        plain = make_batch(ref, rows=300, seed=5)
        flipped = make_batch(ref, rows=300, seed=5, corrupt=Corruption.flipped_labels)
        assert (flipped[ref.label] == 1 - plain[ref.label]).all()
        pd.testing.assert_frame_equal(flipped[list(ref.features)], plain[list(ref.features)])


# --- data.batch_io ----------------------------------------------------------------------------


class TestBatchFiles:
    @pytest.mark.parametrize("name", ["batch.csv", "batch.parquet", "batch.pq", "BATCH.CSV"])
    def test_round_trip_keeps_values_and_dtypes(self, ref: Reference, tmp_path: Path, name: str) -> None:
        frame = make_batch(ref, rows=50, seed=7)
        path = tmp_path / "nested" / name
        write_batch(frame, path)
        pd.testing.assert_frame_equal(read_batch(path), frame)

    @pytest.mark.parametrize("suffix", [".json", ".xlsx", ""])
    def test_unknown_suffix_is_named(self, tmp_path: Path, suffix: str) -> None:
        path = tmp_path / f"batch{suffix}"
        path.write_text("a,b\n1,2\n")
        with pytest.raises(DataFormatError, match=f"unsupported batch format '{suffix}'"):
            read_batch(path)
        with pytest.raises(DataFormatError, match=f"unsupported batch format '{suffix}'"):
            write_batch(pd.DataFrame({"a": [1]}), tmp_path / f"out{suffix}")

    @pytest.mark.parametrize(
        ("name", "fmt"), [("b.csv", "csv"), ("b.PQ", "parquet"), ("b.Parquet", "parquet")]
    )
    def test_format_follows_suffix_case_insensitively(self, name: str, fmt: str) -> None:
        assert batch_format(Path(name)) == fmt

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(DataFormatError, match="no such file") as info:
            read_batch(tmp_path / "absent.csv")
        assert "absent.csv" in str(info.value)

    def test_empty_csv(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        with pytest.raises(DataFormatError, match="empty"):
            read_batch(path)

    @pytest.mark.parametrize("name", ["garbage.parquet", "empty.parquet"])
    def test_unreadable_parquet(self, tmp_path: Path, name: str) -> None:
        path = tmp_path / name
        path.write_bytes(b"" if name.startswith("empty") else bytes(range(256)) * 4)
        with pytest.raises(DataFormatError, match="cannot be read as parquet") as info:
            read_batch(path)
        assert name in str(info.value)

    def test_binary_csv(self, tmp_path: Path) -> None:
        path = tmp_path / "binary.csv"
        path.write_bytes(bytes(range(256)) * 4)
        with pytest.raises(DataFormatError, match="cannot be read as csv"):
            read_batch(path)

    def test_file_sha256_is_the_sha256_of_the_bytes(self, tmp_path: Path) -> None:
        path = tmp_path / "blob.bin"
        blob = bytes(range(256)) * 10_000  # spans several read chunks
        path.write_bytes(blob)
        assert file_sha256(path) == hashlib.sha256(blob).hexdigest()


# --- validation.suite -------------------------------------------------------------------------


class TestBuildReferenceSuite:
    def test_every_feature_has_not_null_a_type_and_a_tolerant_range(
        self, ref: Reference, suite: SuiteSpec
    ) -> None:
        assert {e.column for e in by_type(suite, "expect_column_values_to_not_be_null")} == {
            *ref.features,
            ref.label,
        }
        typed = by_type(suite, "expect_column_values_to_be_in_type_list")
        assert {e.column for e in typed} == set(ref.features)  # float columns accept whole-number batches
        between = {e.column: e for e in by_type(suite, "expect_column_values_to_be_between")}
        assert set(between) == set(ref.features)
        whole = ref.frame()
        for col, exp in between.items():
            assert exp.kwargs["min_value"] <= whole[col].min() and exp.kwargs["max_value"] >= whole[col].max()
            assert exp.kwargs["mostly"] == 0.99

    def test_label_must_be_a_known_class(self, ref: Reference, suite: SuiteSpec) -> None:
        (in_set,) = by_type(suite, "expect_column_values_to_be_in_set")
        assert in_set.column == ref.label
        assert in_set.kwargs["value_set"] == [0, 1] and "mostly" not in in_set.kwargs

    def test_table_level_expectations(self, ref: Reference, suite: SuiteSpec) -> None:
        (columns,) = by_type(suite, "expect_table_columns_to_match_set")
        assert columns.kwargs == {"column_set": [*ref.features, ref.label], "exact_match": True}
        (rows,) = by_type(suite, "expect_table_row_count_to_be_between")
        assert rows.kwargs == {"min_value": 50}
        (unique,) = by_type(suite, "expect_compound_columns_to_be_unique")
        assert unique.kwargs == {"column_list": [*ref.features, ref.label], "mostly": 0.95}

    def test_uses_only_supported_types(self, suite: SuiteSpec) -> None:
        assert {e.type for e in suite.expectations} <= SUPPORTED_TYPES

    def test_margin_widens_the_ranges(self, ref: Reference, suite: SuiteSpec) -> None:
        wide = build_reference_suite(ref, name="breast_cancer", version=1, margin=1.0)
        col = ref.features[0]
        narrow_hi = next(e for e in by_type(suite, "expect_column_values_to_be_between") if e.column == col)
        wide_hi = next(e for e in by_type(wide, "expect_column_values_to_be_between") if e.column == col)
        assert wide_hi.kwargs["max_value"] > narrow_hi.kwargs["max_value"]

    def test_integer_and_negative_columns_keep_their_kind_and_sign(self, tmp_path: Path) -> None:
        frame = pd.DataFrame(
            {
                "count": np.arange(100, dtype=np.int64) % 7,
                "z score": np.linspace(-3.0, 3.0, 100),
                "label": ["a", "b", "c", "d"] * 25,
            }
        )
        path = tmp_path / "data.csv"
        frame.to_csv(path, index=False)
        ref = load_reference(DataConfig(reference=str(path), label_column="label"), base_dir=tmp_path)
        spec = build_reference_suite(ref, name="s", version=1)
        types = {e.column: e.kwargs["type_"] for e in by_type(spec, "expect_column_values_to_be_of_type")}
        assert types == {"count": "int64"}
        between = {e.column: e.kwargs for e in by_type(spec, "expect_column_values_to_be_between")}
        assert between["z score"]["min_value"] < -3.0 and between["count"]["min_value"] == int(
            between["count"]["min_value"]
        )
        (in_set,) = by_type(spec, "expect_column_values_to_be_in_set")
        assert in_set.kwargs["value_set"] == ["a", "b", "c", "d"]

    def test_a_regression_label_gets_a_range_not_a_set(self, tmp_path: Path) -> None:
        rng = np.random.default_rng(0)
        frame = pd.DataFrame({"x": rng.normal(size=200), "y": rng.normal(100, 20, size=200)})
        frame.to_csv(tmp_path / "d.csv", index=False)
        ref = load_reference(
            DataConfig(reference=str(tmp_path / "d.csv"), label_column="y"), base_dir=tmp_path
        )
        spec = build_reference_suite(ref, name="s", version=1)
        assert ref.task == "regression" and not by_type(spec, "expect_column_values_to_be_in_set")
        assert {e.column for e in by_type(spec, "expect_column_values_to_be_between")} == {"x", "y"}


def with_max_value(suite: SuiteSpec, column: str, value: float) -> SuiteSpec:
    exps = [
        e.model_copy(update={"kwargs": {**e.kwargs, "max_value": value}})
        if e.type == "expect_column_values_to_be_between" and e.column == column
        else e
        for e in suite.expectations
    ]
    return suite.model_copy(update={"expectations": exps})


class TestSuiteHash:
    def test_same_content_same_hash(self, ref: Reference, suite: SuiteSpec) -> None:
        rebuilt = build_reference_suite(ref, name="breast_cancer", version=1)
        assert rebuilt is not suite
        assert suite_hash(rebuilt) == suite_hash(suite)
        assert len(suite_hash(suite)) == 64

    def test_kwargs_order_does_not_matter(self) -> None:
        a = SuiteSpec(name="s", version=1, expectations=[ExpectationSpec(type="t", kwargs={"x": 1, "y": 2})])
        b = SuiteSpec(name="s", version=1, expectations=[ExpectationSpec(type="t", kwargs={"y": 2, "x": 1})])
        assert suite_hash(a) == suite_hash(b)

    def test_changed_bound_changes_hash(self, ref: Reference, suite: SuiteSpec) -> None:
        changed = with_max_value(suite, ref.features[0], 1e6)
        assert changed != suite
        assert suite_hash(changed) != suite_hash(suite)

    def test_version_and_name_are_part_of_the_hash(self, suite: SuiteSpec) -> None:
        assert suite_hash(suite.model_copy(update={"version": 2})) != suite_hash(suite)
        assert suite_hash(suite.model_copy(update={"name": "other"})) != suite_hash(suite)


class TestSuiteFiles:
    def test_save_load_round_trip(self, suite: SuiteSpec, tmp_path: Path) -> None:
        path = tmp_path / "deep" / "suite.json"
        save_suite(suite, path)
        loaded = load_suite(path)
        assert loaded == suite
        assert suite_hash(loaded) == suite_hash(suite)

    def test_saved_text_is_stable(self, suite: SuiteSpec, tmp_path: Path) -> None:
        first, second = tmp_path / "a.json", tmp_path / "b.json"
        save_suite(suite, first)
        save_suite(load_suite(first), second)
        assert first.read_bytes() == second.read_bytes()
        assert first.read_text().endswith("}\n")

    def test_missing_file(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="expectation suite not found") as info:
            load_suite(tmp_path / "nope.json")
        assert "nope.json" in str(info.value)

    @pytest.mark.parametrize("text", ["{not json", "", "[1, 2]"])
    def test_invalid_json_names_the_file(self, tmp_path: Path, text: str) -> None:
        path = tmp_path / "broken.json"
        path.write_text(text)
        with pytest.raises(ConfigError, match="invalid suite") as info:
            load_suite(path)
        assert str(path) in str(info.value)

    def test_invalid_field_names_the_key(self, suite: SuiteSpec, tmp_path: Path) -> None:
        raw = suite.model_dump(mode="json")
        raw["version"] = 0
        path = tmp_path / "zero.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match=r"invalid suite at version") as info:
            load_suite(path)
        assert str(path) in str(info.value)

    def test_unknown_expectation_type_names_file_and_type(self, suite: SuiteSpec, tmp_path: Path) -> None:
        raw = suite.model_dump(mode="json")
        raw["expectations"].append({"type": "expect_column_values_to_be_unicorns", "kwargs": {"column": "x"}})
        path = tmp_path / "unknown.json"
        path.write_text(json.dumps(raw))
        with pytest.raises(ConfigError, match="expect_column_values_to_be_unicorns") as info:
            load_suite(path)
        assert str(path) in str(info.value)
        assert "unsupported expectation type" in str(info.value)
