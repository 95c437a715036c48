"""Report renderers: table rows, markdown, MLflow tags and a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

from slipway.canary.report import check_rows, decision_rows, plot_png, render_markdown, version_tags
from slipway.canary.simulate import simulate
from slipway.config import CanaryConfig

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_png_is_a_valid_png_and_lands_at_the_path(tmp_path: Path) -> None:
    outcome, _ = simulate("F6", seed=3, policy=CanaryConfig())
    path = tmp_path / "plots" / "canary.png"
    data = plot_png(outcome.timeline, title="F6", path=path)
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000 and path.read_bytes() == data


def test_png_of_an_empty_timeline_still_renders() -> None:
    outcome, _ = simulate("F1", seed=0, policy=CanaryConfig())
    assert outcome.timeline == [] and plot_png(outcome.timeline).startswith(PNG_MAGIC)


def test_rows_markdown_and_tags_carry_the_decision() -> None:
    outcome, _ = simulate("F5", seed=0, policy=CanaryConfig())
    rows = decision_rows(outcome.decisions)
    assert len(rows) == len(outcome.decisions) and rows[-1]["outcome"] == "rollback"
    assert "latency" in rows[-1]["failed"] and rows[-1]["n_canary"] > 0
    assert {r["name"] for r in check_rows(outcome.decisions[-1])} >= {"latency", "error_rate", "shift"}
    md = render_markdown(outcome)
    assert "**rolled_back**" in md and "| latency | failed |" in md
    tags = version_tags(outcome)
    assert tags["canary.result"] == "rolled_back" and tags["canary.peak_weight"] == "5"
    assert all(len(v) <= 5000 for v in tags.values())
    assert any(c["name"] == "latency" for c in json.loads(tags["canary.checks"]))
