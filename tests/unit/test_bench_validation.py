"""The validation benchmark's plumbing on one small reference (rates come from `make bench`)."""

from __future__ import annotations

from slipway.bench.validation import GATE_KINDS, bench_reference, own_rows
from slipway.config import DataConfig
from slipway.data.reference import load_reference


def test_fresh_samples_pass_and_every_gate_corruption_is_caught() -> None:
    ref = load_reference(DataConfig(reference="sklearn:iris"))
    result = bench_reference(ref, samples=5, corrupt_samples=2, rows=100, gx_checks=0, gx=None)
    assert result["false_rejections"] == 0
    assert set(result["detection"]) == {k.value for k in GATE_KINDS}
    assert all(d["caught"] == d["batches"] == 2 for d in result["detection"].values())


def test_own_rows_are_drawn_without_replacement() -> None:
    ref = load_reference(DataConfig(reference="sklearn:iris"))
    sample = own_rows(ref, seed=3, rows=1000)
    assert len(sample) == len(ref.frame())
