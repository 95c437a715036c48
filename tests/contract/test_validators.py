"""The DataValidator contract, run by every backend (Great Expectations and the pandas fake).

`ValidatorContract` is the shared suite: a backend's test class subclasses it and provides the `validator`
fixture. `TestBackendsAgree` checks that the fake reaches GX's verdicts, failure for failure.
A GX run costs ~3 s, so each batch is validated once per backend and the report is shared by every test
that reads it (`Runs.report`); only the idempotence test validates a batch a second time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pandas as pd
import pytest

from slipway.data.batch_io import read_batch, write_batch
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import Reference
from slipway.validation.base import DataValidator, ValidationReport
from slipway.validation.fake import PandasValidator
from slipway.validation.suite import ExpectationSpec, SuiteSpec, build_reference_suite, suite_hash

SEED = 20261125
ROWS = 300

MATCH_SET = "expect_table_columns_to_match_set"
ROW_COUNT = "expect_table_row_count_to_be_between"
NOT_NULL = "expect_column_values_to_not_be_null"
OF_TYPE = "expect_column_values_to_be_of_type"
IN_TYPES = "expect_column_values_to_be_in_type_list"
BETWEEN = "expect_column_values_to_be_between"
IN_SET = "expect_column_values_to_be_in_set"
UNIQUE = "expect_compound_columns_to_be_unique"

# Every kind the validation gate must catch; flipped labels are plausible data (the quality gate's job).
CAUGHT = [k for k in Corruption if k is not Corruption.flipped_labels]

Pair = tuple[str, str | None]
Triple = tuple[str, str | None, int | None]


def expected_failures(ref: Reference) -> dict[Corruption, set[Pair]]:
    """Per caught kind: every (expectation type, column) that must fail, and nothing else may."""
    f = ref.features
    return {
        Corruption.missing_column: {
            (MATCH_SET, None),
            (NOT_NULL, f[3]),
            (IN_TYPES, f[3]),
            (BETWEEN, f[3]),
            (UNIQUE, None),
        },
        Corruption.nulls: {(NOT_NULL, f[0])},
        Corruption.out_of_range: {(BETWEEN, f[1])},
        Corruption.bad_labels: {(IN_SET, ref.label)},
        # strings in a float column: the wrong dtype, and values that cannot be compared with the bounds
        Corruption.wrong_type: {(IN_TYPES, f[2]), (BETWEEN, f[2])},
        Corruption.empty: {(ROW_COUNT, None)},
        Corruption.duplicates: {(UNIQUE, None)},
    }


def pairs(report: ValidationReport) -> set[Pair]:
    return {(f.type, f.column) for f in report.failures}


def triples(report: ValidationReport) -> Counter[Triple]:
    return Counter((f.type, f.column, f.unexpected_count) for f in report.failures)


def test_every_caught_kind_has_an_expected_verdict(ref: Reference) -> None:
    assert set(expected_failures(ref)) == set(CAUGHT)


@dataclass
class Runs:
    """The contract's batches run through one validator, each batch once per backend per module."""

    validator: DataValidator
    ref: Reference
    suite: SuiteSpec
    workdir: Path
    cache: dict[tuple[str, str], ValidationReport]

    def frame(self, case: str) -> pd.DataFrame:
        """'clean', a Corruption value, or '<case>.csv' for that batch after write_batch + read_batch."""
        name, _, suffix = case.partition(".")
        kind = None if name == "clean" else Corruption(name)
        frame = make_batch(self.ref, rows=ROWS, seed=SEED, corrupt=kind)
        if not suffix:
            return frame
        path = self.workdir / f"{name}.{suffix}"
        write_batch(frame, path)
        return read_batch(path)

    def validate(self, frame: pd.DataFrame, run_name: str) -> ValidationReport:
        return self.validator.validate(
            frame, suite=self.suite, suite_hash=suite_hash(self.suite), run_name=run_name
        )

    def report(self, case: str) -> ValidationReport:
        key = (self.validator.name, case)
        if key not in self.cache:
            self.cache[key] = self.validate(self.frame(case), run_name=f"contract-{case}")
        return self.cache[key]


@pytest.fixture(scope="module")
def suite(ref: Reference) -> SuiteSpec:
    return build_reference_suite(ref, name="breast_cancer", version=1)


@pytest.fixture(scope="module")
def report_cache() -> dict[tuple[str, str], ValidationReport]:
    return {}


@pytest.fixture(scope="module")
def batch_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("batches")


@pytest.fixture(scope="module")
def gx_validator(tmp_path_factory: pytest.TempPathFactory) -> DataValidator:
    """One GX validator (and project) per module: importing GX alone takes seconds."""
    pytest.importorskip("great_expectations")
    from slipway.validation.gx import GreatExpectationsValidator

    root = tmp_path_factory.mktemp("gx")
    return GreatExpectationsValidator(project_dir=root / "project", docs_dir=root / "docs")


class ValidatorContract(ABC):
    """What every DataValidator must do. Subclass it and provide the `validator` fixture."""

    @pytest.fixture
    @abstractmethod
    def validator(self) -> DataValidator:
        """The backend under test."""

    @pytest.fixture
    def runs(
        self,
        validator: DataValidator,
        ref: Reference,
        suite: SuiteSpec,
        batch_dir: Path,
        report_cache: dict[tuple[str, str], ValidationReport],
    ) -> Runs:
        return Runs(validator, ref, suite, batch_dir, report_cache)

    def test_clean_batch_passes_every_expectation(self, runs: Runs, suite: SuiteSpec) -> None:
        report = runs.report("clean")
        assert report.failures == []
        assert report.success is True
        assert report.evaluated == len(suite.expectations)

    def test_report_names_suite_batch_and_backend(
        self, runs: Runs, suite: SuiteSpec, validator: DataValidator
    ) -> None:
        report = runs.report("clean")
        assert (report.suite_name, report.suite_version) == (suite.name, suite.version)
        assert report.suite_hash == suite_hash(suite)
        assert report.rows == ROWS
        assert report.backend == validator.name
        assert report.backend != DataValidator.name

    @pytest.mark.parametrize("kind", CAUGHT, ids=lambda k: k.value)
    def test_corruption_fails_naming_type_and_column(
        self, runs: Runs, ref: Reference, suite: SuiteSpec, kind: Corruption
    ) -> None:
        report = runs.report(kind.value)
        assert report.success is False
        assert pairs(report) == expected_failures(ref)[kind]
        assert report.evaluated == len(suite.expectations)

    def test_flipped_labels_pass_validation(self, runs: Runs) -> None:
        report = runs.report(Corruption.flipped_labels.value)
        assert report.failures == []
        assert report.success is True

    @pytest.mark.parametrize(
        ("case", "type_", "column_of", "observed"),
        [
            ("missing-column", MATCH_SET, None, "missing: [{dropped!r}]"),
            ("missing-column", NOT_NULL, 3, "column is missing from the batch"),
            ("bad-labels", IN_SET, "label", "e.g. 8, 8, 8"),  # the largest class + 7
            (
                "wrong-type",
                IN_TYPES,
                2,
                "dtype object, expected one of ['float64', 'float32', 'int64', 'int32']",
            ),
            ("empty", ROW_COUNT, None, "observed 0"),
        ],
        ids=["missing-column", "column-missing", "bad-labels", "wrong-type", "empty"],
    )
    def test_failure_shows_what_was_observed(
        self,
        runs: Runs,
        ref: Reference,
        case: str,
        type_: str,
        column_of: int | str | None,
        observed: str,
    ) -> None:
        column = ref.label if column_of == "label" else None
        if isinstance(column_of, int):
            column = ref.features[column_of]
        (failure,) = [f for f in runs.report(case).failures if (f.type, f.column) == (type_, column)]
        assert failure.observed == observed.format(dropped=ref.features[3])

    @pytest.mark.parametrize("kind", ["nulls", "out-of-range", "bad-labels"])
    def test_map_failure_counts_every_corrupted_value(self, runs: Runs, kind: str) -> None:
        (failure,) = runs.report(kind).failures
        assert failure.unexpected_count == ROWS // 20  # corrupt_batch touches n // 20 rows

    def test_duplicates_count_every_row_of_a_duplicated_group(self, runs: Runs) -> None:
        frame = runs.frame("duplicates")
        (failure,) = runs.report("duplicates").failures
        assert failure.unexpected_count == int(frame.duplicated(keep=False).sum())
        assert failure.unexpected_count > ROWS * 0.05  # above the suite's allowed duplicate share

    def test_wrong_type_is_caught_after_a_csv_round_trip(self, runs: Runs, ref: Reference) -> None:
        frame = runs.frame("wrong-type.csv")
        assert not pd.api.types.is_float_dtype(frame[ref.features[2]])  # the strings survived the CSV
        report = runs.report("wrong-type.csv")
        assert pairs(report) == expected_failures(ref)[Corruption.wrong_type]

    def test_same_input_twice_gives_same_report_and_leaves_input_alone(self, runs: Runs) -> None:
        frame = runs.frame("duplicates")
        before = frame.copy()
        first = runs.report("duplicates")
        again = runs.validate(frame, run_name="contract-again")
        assert sorted(f.model_dump_json() for f in again.failures) == sorted(
            f.model_dump_json() for f in first.failures
        )
        assert (again.success, again.evaluated, again.rows) == (first.success, first.evaluated, first.rows)
        pd.testing.assert_frame_equal(frame, before)


class TestPandasValidator(ValidatorContract):
    @pytest.fixture
    def validator(self) -> DataValidator:
        return PandasValidator()

    def test_no_data_docs(self, runs: Runs) -> None:
        assert runs.report("clean").data_docs is None

    def test_mirrors_gx_semantics_on_edge_cases(self) -> None:
        report = PandasValidator().validate(edge_frame(), suite=EDGE_SUITE, suite_hash="x", run_name="edge")
        assert triples(report) == EDGE_FAILURES
        assert report.evaluated == len(EDGE_SUITE.expectations)

    def test_odd_suite_entries_are_reported_not_raised(self) -> None:
        suite = SuiteSpec(
            name="odd",
            version=1,
            expectations=[
                ExpectationSpec(type="expect_column_values_to_be_unique", kwargs={"column": "x"}),
                ExpectationSpec(type=BETWEEN, kwargs={"column": "x"}),  # no bounds at all
            ],
        )
        report = PandasValidator().validate(edge_frame(), suite=suite, suite_hash="x", run_name="odd")
        assert report.success is False
        assert [f.type for f in report.failures] == [e.type for e in suite.expectations]
        assert all(f.observed.startswith("error:") for f in report.failures)

    def test_table_without_columns_or_rows_is_reported(self, suite: SuiteSpec) -> None:
        report = PandasValidator().validate(pd.DataFrame(), suite=suite, suite_hash="x", run_name="bare")
        assert report.success is False
        assert report.rows == 0
        assert {f.type for f in report.failures} == {
            MATCH_SET,
            ROW_COUNT,
            NOT_NULL,
            IN_TYPES,
            BETWEEN,
            IN_SET,
            UNIQUE,
        }

    def test_a_thousand_rows_against_the_whole_suite(self, ref: Reference, suite: SuiteSpec) -> None:
        frame = make_batch(ref, rows=1000, seed=SEED)
        report = PandasValidator().validate(frame, suite=suite, suite_hash="x", run_name="rows")
        assert report.success and report.rows == 1000
        assert report.evaluated == len(suite.expectations) == 3 * len(ref.features) + 5  # (speed: make bench)


@pytest.mark.integration
class TestGreatExpectationsValidator(ValidatorContract):
    @pytest.fixture
    def validator(self, gx_validator: DataValidator) -> DataValidator:
        return gx_validator

    def test_data_docs_page_is_built(self, runs: Runs) -> None:
        url = runs.report("clean").data_docs
        assert url is not None
        assert url.startswith("file://")
        assert Path(urlparse(url).path).is_file()


@pytest.mark.integration
class TestBackendsAgree:
    """The fake must reach GX's verdict on every batch the contract uses (reports are shared, not rerun)."""

    @pytest.mark.parametrize("case", ["clean", *(k.value for k in Corruption), "wrong-type.csv"])
    def test_same_failures_on_contract_batches(
        self,
        gx_validator: DataValidator,
        ref: Reference,
        suite: SuiteSpec,
        batch_dir: Path,
        report_cache: dict[tuple[str, str], ValidationReport],
        case: str,
    ) -> None:
        gx = Runs(gx_validator, ref, suite, batch_dir, report_cache).report(case)
        fake = Runs(PandasValidator(), ref, suite, batch_dir, report_cache).report(case)
        assert pairs(fake) == pairs(gx)
        assert triples(fake) == triples(gx)
        assert (fake.success, fake.evaluated, fake.rows) == (gx.success, gx.evaluated, gx.rows)

    def test_same_failures_on_edge_semantics(self, gx_validator: DataValidator) -> None:
        frame = edge_frame()
        gx = gx_validator.validate(frame, suite=EDGE_SUITE, suite_hash="x", run_name="edge")
        fake = PandasValidator().validate(frame, suite=EDGE_SUITE, suite_hash="x", run_name="edge")
        assert triples(gx) == EDGE_FAILURES
        assert triples(fake) == triples(gx)


def edge_frame() -> pd.DataFrame:
    """Ten rows exercising nulls, `mostly`, strict bounds, strings and all-missing compound rows."""
    dup = [1.0, 1.0, np.nan, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, np.nan]  # rows 0-1 duplicate, 2 and 9 all-missing
    return pd.DataFrame(
        {
            "x": [0.0, 1.0, 2.0, np.nan, 4.0, 5.0, 100.0, np.nan, 8.0, 9.0],
            "c": ["a", "b", None, "z", "a", "b", "a", None, "b", "a"],
            "a": dup,
            "b": list(dup),
            "extra": list(range(10)),
        }
    )


def _exp(expectation_type: str, /, **kwargs: object) -> ExpectationSpec:
    return ExpectationSpec(type=expectation_type, kwargs=kwargs)


EDGE_SUITE = SuiteSpec(
    name="edge",
    version=1,
    expectations=[
        _exp(MATCH_SET, column_set=["x", "c", "a", "b"], exact_match=False),  # extra column allowed: holds
        _exp(MATCH_SET, column_set=["x", "c", "a", "b"], exact_match=True),  # fails: unexpected 'extra'
        _exp(ROW_COUNT, min_value=1, max_value=5),  # fails: 10 rows
        _exp(ROW_COUNT, min_value=10, max_value=10),  # bounds inclusive: holds
        _exp(NOT_NULL, column="x"),  # fails: 2 nulls
        _exp(NOT_NULL, column="x", mostly=0.8),  # 8 of 10 non-null: holds
        _exp(NOT_NULL, column="gone"),  # fails: no such column
        _exp(BETWEEN, column="x", min_value=0, max_value=10),  # fails on 100; nulls skipped
        _exp(BETWEEN, column="x", min_value=0, max_value=10, mostly=0.85),  # 7 of 8 non-null: holds
        _exp(BETWEEN, column="x", min_value=0, max_value=10, strict_min=True),  # fails on 0 and 100
        _exp(BETWEEN, column="x", max_value=10),  # one-sided: fails on 100
        _exp(BETWEEN, column="c", min_value=0, max_value=10),  # strings vs numbers: an error, reported
        _exp(IN_SET, column="c", value_set=["a", "b"]),  # fails on 'z'; nulls skipped
        _exp(IN_SET, column="c", value_set=["a", "b", "z"]),  # holds
        _exp(OF_TYPE, column="x", type_="float64"),  # holds
        _exp(OF_TYPE, column="extra", type_="int64"),  # holds
        _exp(OF_TYPE, column="c", type_="float64"),  # fails
        _exp(IN_TYPES, column="extra", type_list=["float64", "int64"]),  # holds
        _exp(IN_TYPES, column="c", type_list=["float64", "int64"]),  # fails
        _exp(UNIQUE, column_list=["a", "b"]),  # fails: rows 0-1; all-missing rows 2 and 9 ignored
        _exp(UNIQUE, column_list=["a", "b"], mostly=0.7),  # 6 of 8 considered rows unique: holds
        _exp(UNIQUE, column_list=["a", "b"], ignore_row_if="never"),  # fails: rows 0-1 and the NaN pair
    ],
)

EDGE_FAILURES: Counter[Triple] = Counter(
    [
        (MATCH_SET, None, None),
        (ROW_COUNT, None, None),
        (NOT_NULL, "x", 2),
        (NOT_NULL, "gone", None),
        (BETWEEN, "x", 1),
        (BETWEEN, "x", 2),
        (BETWEEN, "x", 1),
        (BETWEEN, "c", None),
        (IN_SET, "c", 1),
        (OF_TYPE, "c", None),
        (IN_TYPES, "c", None),
        (UNIQUE, None, 2),
        (UNIQUE, None, 4),
    ]
)
