"""`make bench`, canary part, in quick mode: the document's keys and its files."""

from __future__ import annotations

import json
from pathlib import Path

from slipway.bench.canary import render_markdown, run, wilson_upper
from slipway.canary.simulate import CLASSES

REPO = Path(__file__).resolve().parents[3]
KEYS = {
    "runs_per_class",
    "false_promotions",
    "aa_false_rollback_rate",
    "f11_false_rollback_rate",
    "worst_p95_rollback_intervals",
    "classes",
    "catalogue",
    "live_only",
    "policy",
    "sim",
    "targets",
    "control_false_rollbacks",
    "wall_s",
}
ROW = {
    "promotions",
    "rollbacks",
    "rollback_intervals_p50",
    "rollback_intervals_p95",
    "peak_weight_p50",
    "peak_weight_max",
}


def test_quick_bench_writes_every_key(tmp_path: Path) -> None:
    doc = run(tmp_path, quick=True, runs=2, workers=1, config_path=REPO / "slipway.yaml")
    assert json.loads((tmp_path / "canary.json").read_text()) == doc
    assert (tmp_path / "canary.md").read_text() == render_markdown(doc)
    assert set(doc) >= KEYS and doc["runs_per_class"] == 2
    assert set(doc["classes"]) == set(CLASSES) and all(set(r) >= ROW for r in doc["classes"].values())
    assert doc["false_promotions"] == 0 and doc["classes"]["F1"]["peak_weight_max"] == 0
    assert doc["sim"]["f7"]["ks_d"] > 0.1
    assert all(isinstance(t["met"], bool) for t in doc["catalogue"].values())


def test_wilson_upper_bound() -> None:
    assert wilson_upper(0, 300) < 0.02 and wilson_upper(6, 300) > 0.02 and wilson_upper(0, 0) == 1.0
