"""`make bench` (serving part) end to end on the quick protocol: every key, sane values, no timing claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from slipway.bench.serving import HEADLINE_KEYS, RUNS, image_size, render_markdown, run

pytestmark = pytest.mark.slow  # trains the example MLP, exports it, starts three servers: ~15 s on 2 cores

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench")
    return out, run(out, quick=True, config_path=REPO / "slipway.yaml")


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_the_json_on_disk_is_the_returned_document(bench: tuple[Path, dict[str, Any]]) -> None:
    out, doc = bench
    assert json.loads((out / "serving.json").read_text()) == doc
    assert (out / "serving.md").read_text() == render_markdown(doc)


def test_headline_ratios_are_present_and_sane(bench: tuple[Path, dict[str, Any]]) -> None:
    _, doc = bench
    assert set(HEADLINE_KEYS) <= set(doc)
    for key in ("predict_over_hello_rps", "p99_over_p50", "microbatch_on_over_off_rps"):
        assert _positive(doc[key]), (key, doc[key])
    assert doc["p99_over_p50"] >= 1.0
    assert doc["image_size_mb"] is None and "image.json not found" in doc["image_size_mb_reason"]
    assert set(doc["targets"]) == {"predict_over_hello_rps", "p99_over_p50"}
    assert all(isinstance(t["met"], bool) for t in doc["targets"].values())
    assert doc["quick"] is True and doc["protocol"]["concurrency"] == 16


def test_every_server_answered_every_request_and_shut_down_cleanly(
    bench: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = bench
    assert tuple(doc["runs"]) == RUNS
    for name, result in doc["runs"].items():
        assert result["requests"] > 0 and result["errors"] == 0, name
        assert result["statuses"] == {"200": result["requests"]}, name
        assert 0 < result["p50_ms"] <= result["p99_ms"], name
        assert result["exit_code"] == 0, name


def test_image_size_is_read_from_the_image_benchmarks_json(tmp_path: Path) -> None:
    (tmp_path / "image.json").write_text(json.dumps({"image_size_mb": 312.5}))
    assert image_size(tmp_path) == (312.5, None)
    (tmp_path / "image.json").write_text(json.dumps({"image_size_mb": None, "reason": "no builder"}))
    assert image_size(tmp_path) == (None, f"{tmp_path / 'image.json'} has image_size_mb null: no builder")
    (tmp_path / "image.json").write_text(json.dumps({"other": 1}))
    assert image_size(tmp_path) == (None, f"{tmp_path / 'image.json'} has no image_size_mb key")
