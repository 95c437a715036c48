"""`make bench` (serving part) end to end on the quick protocol: every key, sane values, no timing claims."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from slipway.bench.serving import HEADLINE_KEYS, RUNS, image_size, render_markdown, run
from slipway.bench.stacks import STACKS

pytestmark = pytest.mark.slow  # trains the example MLP, exports it, starts six servers, overloads one: ~40 s

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
    assert all(isinstance(t["met"], bool) for t in doc["targets"].values())
    assert {
        "predict_over_hello_rps",
        "p99_over_p50",
        "server_rss_growth",
        "overload_x2",
        "overload_x4",
    } <= set(doc["targets"])
    assert doc["quick"] is True and doc["protocol"]["concurrency"] == 16


def test_the_baseline_is_the_fastest_hello_world_and_the_previous_stack_is_measured(
    bench: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = bench
    hellos = {
        name.removeprefix("hello_"): run["rps"]
        for name, run in doc["runs"].items()
        if name.startswith("hello_")
    }
    assert set(hellos) == set(STACKS) and doc["hello_server"] == max(hellos, key=lambda k: hellos[k])
    assert doc["predict_over_hello_rps"] == round(doc["predict_rps"] / hellos[doc["hello_server"]], 4)
    assert _positive(doc["predict_rps"]) and _positive(doc["previous_stack_predict_rps"])


def test_every_overload_reports_goodput_tail_shedding_and_timeouts(
    bench: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = bench
    assert set(doc["overload"]) == {"x2", "x4"}
    for key, overload in doc["overload"].items():
        assert set(overload) == {"goodput_ratio", "p99_admitted_ms", "shed_share", "client_timeouts"}, key
        detail = doc["overload_detail"][key]
        assert detail["scheduled"] > 0 and sum(detail["statuses"].values()) <= detail["scheduled"]
        assert set(detail["statuses"]) <= {"200", "503"}, detail["statuses"]  # answered or shed, nothing else
        assert overload["goodput_ratio"] is not None and overload["goodput_ratio"] >= 0
        assert isinstance(overload["client_timeouts"], int)
    assert doc["server_rss_mb"]["before_overload"] > 0


def test_every_server_answered_every_request_and_shut_down_cleanly(
    bench: tuple[Path, dict[str, Any]],
) -> None:
    _, doc = bench
    assert tuple(doc["runs"]) == RUNS  # every hello-world stack, /predict, micro-batched, previous stack
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
