"""Watching a release: what the flow run's state, name and tags say, the evidence links, readable table
cells, offline Data Docs, and the per-stage log lines."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slipway.orchestration.remote import RemoteOutcome, parse_table
from slipway.orchestration.run_labels import (
    decision_of_run,
    end_tags,
    final_state,
    is_labelled,
    merged_tags,
    run_name,
    start_tags,
    trigger_of,
)
from slipway.registry.links import RunLinks, ui_base
from slipway.release.evidence import (
    CANARY_PLOT,
    DATA_DOCS,
    evidence_links,
    links_markdown,
    version_description,
)
from slipway.release.report import decision_artifacts
from slipway.release.result import ReleaseResult
from slipway.reporting.cells import shorten, shorten_middle
from slipway.validation.offline_docs import offline_html, remote_assets

GATE_FAIL = "FAIL: accuracy 0.9366 < 0.9589 required (champion 0.9789 - margin 0.0200)"


def result(decision: str, **kw: Any) -> ReleaseResult:
    base: dict[str, Any] = {
        "decision": decision,
        "stage": {"promoted": "canary", "rolled_back": "canary", "registered": "register"}.get(
            decision, "quality_gate"
        ),
        "model_name": "m",
        "model_version": "7",
        "reasons": ["compared with champion version 6 on the same holdout", "gate passed"],
    }
    return ReleaseResult.model_validate({**base, **kw})


# -- the final state ---------------------------------------------------------------------------------


def test_each_decision_ends_in_a_state_a_team_can_tell_apart() -> None:
    promoted = final_state(result("promoted", deploy={"previous_champion": "6", "stable_version": "7"}))
    assert (promoted.failed, promoted.name) == (False, "Completed")
    assert promoted.message.startswith("promoted v7") and "v6" in promoted.message
    registered = final_state(result("registered"))
    assert (registered.failed, registered.name) == (False, "Completed") and "v7" in registered.message
    rejected = final_state(result("rejected", model_version=None, reasons=[GATE_FAIL, "gate rejected"]))
    assert (rejected.failed, rejected.name) == (True, "Rejected")
    assert "quality_gate" in rejected.message and GATE_FAIL in rejected.message
    rolled = final_state(
        result(
            "rolled_back",
            reasons=["canary rolled_back: failed: shadow_nonfinite", "serving: version 6"],
            deploy={"stable_version": "6"},
        )
    )
    assert (rolled.failed, rolled.name) == (True, "RolledBack")
    assert "shadow_nonfinite" in rolled.message and "v6 serves" in rolled.message
    error = final_state(result("error", stage="image", reasons=["ERROR at stage image: build failed"]))
    assert (error.failed, error.name) == (True, "Failed") and "build failed" in error.message
    assert len(final_state(result("rejected", reasons=["FAIL: " + "x" * 900])).message) <= 500


@pytest.mark.parametrize(
    ("state", "summary", "decision"),
    [
        ("Completed", "promoted", "promoted"),
        ("Completed", "registered", "registered"),
        ("Completed", None, "error"),
        ("Rejected", "rejected", "rejected"),
        ("Rejected", None, "rejected"),  # the state says it even without a summary
        ("RolledBack", "rolled_back", "rolled_back"),
        ("Failed", "promoted", "error"),
        ("Crashed", None, "error"),
        ("TimedOut", None, "error"),
    ],
)
def test_ci_reads_the_decision_from_the_state_and_the_summary(
    state: str, summary: str | None, decision: str
) -> None:
    assert decision_of_run(state, summary) == decision
    outcome = RemoteOutcome(
        deployment="release/release",
        flow_run_id="x",
        flow_run_name="r",
        state=state,
        state_message=None,
        summary={"decision": summary} if summary else {},
    )
    assert outcome.decision == decision
    assert outcome.exit_code() == {"promoted": 0, "registered": 0, "rejected": 1, "rolled_back": 1}.get(
        decision, 2
    )


# -- name and tags -----------------------------------------------------------------------------------


def test_the_trigger_comes_from_a_tag_the_schedule_or_who_ran_it() -> None:
    assert trigger_of(tags=["trigger:push"], deployment=True, auto_scheduled=False) == "push"
    assert trigger_of(tags=["x", "trigger:retrain"], deployment=True, auto_scheduled=True) == "retrain"
    assert trigger_of(
        tags=["trigger:drift:m-20261205T1100Z-ab12cd"], deployment=True, auto_scheduled=False
    ) == (
        "drift:m-20261205T1100Z-ab12cd"  # a retrain the monitor started, and the release it runs
    )
    assert trigger_of(tags=[], deployment=True, auto_scheduled=True) == "schedule"
    assert trigger_of(tags=[], deployment=True, auto_scheduled=False) == "manual"
    assert trigger_of(tags=["trigger:"], deployment=False, auto_scheduled=False) == "local"


def test_run_names_say_model_commit_and_trigger_and_stay_unique() -> None:
    a = run_name(model="m", commit="0123456789abcdef", trigger="push", unique="misty-octopus")
    b = run_name(model="m", commit="0123456789abcdef", trigger="push", unique="brave-lion")
    assert a != b and a.startswith("m · 01234567 · push")
    assert is_labelled(a) and not is_labelled("misty-octopus")
    assert "no-commit" in run_name(model="m", commit=None, trigger="local", unique="x")


def test_tags_carry_model_trigger_decision_and_version_and_replace_their_own_key() -> None:
    tags = start_tags(model="m", commit="0123456789", trigger="push")
    assert tags == ["model:m", "trigger:push", "commit:01234567"]
    assert end_tags(result("promoted")) == ["decision:promoted", "version:7"]
    assert end_tags(result("rejected", model_version=None)) == ["decision:rejected"]
    merged = merged_tags(["team-a", "decision:error", *tags], ["decision:promoted", "version:7"])
    assert merged == [
        "team-a",
        "model:m",
        "trigger:push",
        "commit:01234567",
        "decision:promoted",
        "version:7",
    ]


# -- readable tables ---------------------------------------------------------------------------------


def test_cells_are_cut_visibly_and_keep_what_tells_them_apart() -> None:
    assert shorten("short") == "short"
    cut = shorten("a" * 200)
    assert len(cut) == 80 and cut.endswith("…")
    assert shorten("line one\nline two") == "line one / line two"
    ref = "127.0.0.1:5000/slipway/breast-cancer-mlp@sha256:" + "f" * 60 + "0123"
    middle = shorten_middle(ref)
    assert len(middle) == 80 and middle.startswith("127.0.0.1:5000/") and middle.endswith("0123")


def test_the_summary_table_fits_the_box_and_ci_still_reads_every_full_value() -> None:
    long_reason = "canary rolled_back: " + "failed: shadow_nonfinite because " * 10
    res = result(
        "rolled_back",
        reasons=[long_reason, "serving: version 6"],
        data_path="/srv/batches/" + "deep/" * 30 + "batch-7.csv",
    )
    rows = res.summary_rows()
    assert [r["field"] for r in rows][:4] == ["decision", "model_version", "stage", "why"]
    assert all(len(r["value"]) <= 80 for r in rows)
    summary = parse_table(json.dumps(rows))
    assert summary["reasons"].splitlines() == [long_reason, "serving: version 6"]
    assert summary["data"] == res.data_path and summary["why"] == long_reason
    assert parse_table([{"field": "decision", "value": "promoted"}]) == {"decision": "promoted"}  # old format


# -- evidence ----------------------------------------------------------------------------------------

RUN = RunLinks(ui="http://mlflow.example:5000/", experiment_id="3", run_id="abc")


def test_run_links_point_into_the_mlflow_ui() -> None:
    assert RUN.run_page() == "http://mlflow.example:5000/#/experiments/3/runs/abc"
    assert RUN.artifact_page(DATA_DOCS).endswith("/runs/abc/artifactPath/slipway/data_docs/validation.html")
    assert RUN.artifact_file(CANARY_PLOT) == (
        "http://mlflow.example:5000/get-artifact?path=slipway%2Fcanary.png&run_uuid=abc"
    )
    assert RUN.version_page("my model", "7") == "http://mlflow.example:5000/#/models/my%20model/versions/7"
    assert ui_base(tracking_uri="sqlite:///x.db", explicit=None) is None
    assert (
        ui_base(tracking_uri="http://127.0.0.1:5001", explicit="https://mlflow.team/")
        == "https://mlflow.team"
    )
    assert ui_base(tracking_uri="http://mlflow:5000/", explicit=None) == "http://mlflow:5000"


def test_evidence_links_every_uploaded_report_and_the_plot_inline() -> None:
    links = evidence_links(
        run=RUN,
        run_files={DATA_DOCS, CANARY_PLOT, "slipway/release.json"},
        model_name="m",
        version="7",
        prefect_run_url="http://prefect.example/runs/flow-run/1",
    )
    assert list(links)[:3] == ["Prefect run", "MLflow version", "MLflow run"]
    assert {"Data Docs", "canary plot", "release record (JSON)", "canary plot (image)"} <= set(links)
    assert "canary report" not in links  # not uploaded, not linked
    md = links_markdown(links)
    assert f"![canary plot (image)]({RUN.artifact_file(CANARY_PLOT)})" in md
    assert f"* [Data Docs]({RUN.artifact_page(DATA_DOCS)})" in md
    assert "file://" not in md


def test_without_a_server_evidence_is_a_local_path_never_a_dead_link() -> None:
    links = evidence_links(
        run=None,
        run_files={DATA_DOCS},
        model_name="m",
        version="7",
        prefect_run_url=None,
        local={"Data Docs": "/w/data_docs/page.html"},
    )
    assert links == {"Data Docs": "/w/data_docs/page.html"}
    assert links_markdown(links) == "* Data Docs: `/w/data_docs/page.html` (on the worker)"


def test_the_version_description_says_decision_why_and_where_the_reports_are() -> None:
    links = evidence_links(
        run=RUN,
        run_files={DATA_DOCS},
        model_name="m",
        version="7",
        prefect_run_url="http://p/runs/flow-run/1",
    )
    text = version_description(decision="rejected", stage="canary", why="x" * 1000, links=links)
    assert text.startswith("**rejected** at stage `canary`: ") and len(text.splitlines()[0]) < 360
    assert (
        "[Prefect run](http://p/runs/flow-run/1)" in text
        and f"[Data Docs]({RUN.artifact_page(DATA_DOCS)})" in text
    )
    assert "MLflow version" not in text  # it is shown on that page


def test_decision_artifacts_put_the_decision_and_links_on_the_cards() -> None:
    links = evidence_links(
        run=RUN, run_files={DATA_DOCS, CANARY_PLOT}, model_name="m", version="7", prefect_run_url=None
    )
    arts = {a.key: a for a in decision_artifacts(result("promoted", links=links))}
    assert {"release-decision", "release-summary", "release-evidence", "data-docs"} <= set(arts)
    assert arts["release-decision"].description.startswith("**promoted** v7")
    assert RUN.version_page("m", "7") in arts["release-decision"].description
    assert arts["data-docs"].kind == "link" and arts["data-docs"].body == RUN.artifact_page(DATA_DOCS)
    local = {a.key: a for a in decision_artifacts(result("promoted", links={"Data Docs": "/w/p.html"}))}
    assert local["data-docs"].kind == "markdown" and "/w/p.html" in str(local["data-docs"].body)
    assert "No MLflow server to link to" in str(local["release-evidence"].body)


# -- offline Data Docs -------------------------------------------------------------------------------

GX_PAGE = """<!DOCTYPE html><html><head>
<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>
<link rel="shortcut icon" href="../static/images/favicon.ico" type="image/x-icon"/>
<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>
<style>.navbar-brand a { background: url('https://assets.example/logo.png') 0 0 no-repeat; }</style>
</head><body><a href="../index.html"><img class="NO-CACHE" src="https://assets.example/logo-long.png"/></a>
<script>$(".x").modal();</script>
<table class="table"><tr><td>expect_column_values_to_not_be_null</td><td>100% not null</td></tr></table>
</body></html>"""


def test_data_docs_pages_load_nothing_from_the_network() -> None:
    assert remote_assets(GX_PAGE)
    page = offline_html(GX_PAGE)
    assert remote_assets(page) == []
    assert "<script" not in page and "Content-Security-Policy" in page
    assert "expect_column_values_to_not_be_null" in page and 'href="../index.html"' in page
    assert offline_html(page) == page  # idempotent


# -- per-stage log lines -----------------------------------------------------------------------------


def test_every_stage_logs_what_it_does_and_how_it_ended() -> None:
    from slipway.release.ledger import Ledger
    from slipway.release.outcome import StageOutcome
    from slipway.release.pipeline import run_stages

    def passes(ctx: Any, evidence: Any) -> StageOutcome[None]:
        return StageOutcome(stage="validation", verdict="passed", reasons=("42 expectations met",))

    def rejects(ctx: Any, evidence: Any) -> StageOutcome[None]:
        return StageOutcome(stage="quality_gate", verdict="rejected", cause=GATE_FAIL)

    lines: list[str] = []
    run_stages(Ledger(), None, [("validation", passes), ("quality_gate", rejects)], log=lines.append)  # type: ignore[arg-type]
    assert lines[0].startswith("stage validation: validating the batch")
    assert lines[1].startswith("stage validation: passed in ") and lines[1].endswith("42 expectations met")
    assert lines[2].startswith("stage quality_gate: scoring")
    assert lines[3].startswith("stage quality_gate: rejected in ") and lines[3].endswith(GATE_FAIL)
