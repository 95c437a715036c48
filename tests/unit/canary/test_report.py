"""Report renderers: table rows, markdown, MLflow tags and a real PNG."""

from __future__ import annotations

import json
from pathlib import Path

from slipway.canary.report import (
    check_rows,
    decision_rows,
    plot_png,
    progress_line,
    render_markdown,
    version_tags,
)
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
    outcome, _ = simulate("F5", seed=0, policy=CanaryConfig(shadow_intervals=0))  # caught live, not in shadow
    rows = decision_rows(outcome.decisions)
    assert len(rows) == len(outcome.decisions) and rows[-1]["outcome"] == "rollback"
    assert "latency" in rows[-1]["failed"] and rows[-1]["n_canary"] > 0
    assert {r["name"] for r in check_rows(outcome.decisions[-1])} >= {"latency", "error_rate", "shift"}
    md = render_markdown(outcome)
    assert "**rolled_back**" in md and "| latency | failed |" in md
    tags = version_tags(outcome)
    assert tags["canary.result"] == "rolled_back" and tags["canary.peak_weight"] == "5"
    assert all(len(v) <= 500 for v in tags.values())  # short tags only: the checks are run files
    assert "canary.checks" not in tags
    checks = json.loads(json.dumps(outcome.to_dict()))["decisions"][-1]["checks"]
    assert any(c["name"] == "latency" for c in checks)


def test_decision_rows_put_the_deciding_columns_first_and_keep_cut_reasons_whole() -> None:
    outcome, _ = simulate("F5", seed=0, policy=CanaryConfig(shadow_intervals=0))  # caught live, not in shadow
    rows = decision_rows(outcome.decisions)
    assert list(rows[0])[:5] == ["window", "weight", "outcome", "next_weight", "reason"]
    assert list(rows[0])[-1] == "reason_full"
    for row, d in zip(rows, outcome.decisions, strict=True):
        assert len(row["reason"]) <= 80
        assert (row["reason_full"] or row["reason"]) == d.reason


def test_progress_line_names_weight_counts_checks_and_what_happens_next() -> None:
    outcome, _ = simulate("retrain", seed=1, policy=CanaryConfig())
    assert outcome.result == "promoted"
    live = next(d for d in outcome.decisions if d.phase.value == "live" and d.window is not None)
    assert live.window is not None
    line = progress_line(live)
    assert f"weight {live.weight}%" in line
    assert f"n canary {live.window.n_canary} / stable {live.window.n_stable}" in line
    assert "promoting to 100%" in progress_line(outcome.decisions[-1])


def test_promoted_markdown_reports_the_live_peak_not_the_promotion() -> None:
    outcome, _ = simulate("retrain", seed=1, policy=CanaryConfig())
    md = render_markdown(outcome)
    top = max(d.weight for d in outcome.decisions)
    assert top < 100 and f"→ {top}%, then promoted to 100%" in md
    assert "Peak weight 100%" not in md


def test_missing_entities_per_arm_are_in_the_rows_and_the_progress_line() -> None:
    from slipway.canary.decision import decide

    from .helpers import live, small_policy, window

    policy = small_policy()
    obs = window(
        0,
        weight=5,
        n_c=10,
        n_s=190,
        canary={"entities": 10, "missing": 1},
        stable={"entities": 190, "missing": 9},
    )
    d = decide([obs], state=live(policy, step=0, weight=5), policy=policy)
    (row,) = decision_rows([d])
    assert row["missing_entities"] == "canary 1/10, stable 9/190"
    assert "missing entities canary 1/10, stable 9/190" in progress_line(d)
    plain = decide(
        [window(0, weight=5, n_c=10, n_s=190)], state=live(policy, step=0, weight=5), policy=policy
    )
    assert decision_rows([plain])[0]["missing_entities"] == ""  # no lookups: nothing to show
    check = d.check("missing_entities")
    assert check is not None and {c["name"] for c in check_rows(d)} >= {"missing_entities"}
