"""Triggering a release from CI: the commit check, the summary artifact round trip, exit codes, job summary."""

from __future__ import annotations

import pytest

from slipway.errors import UsageError
from slipway.lineage.collect import check_commit, lineage_tags
from slipway.orchestration.remote import RemoteOutcome, RemoteRunError, parse_table
from slipway.orchestration.summary import job_summary, mlflow_version_url
from slipway.release.result import ReleaseResult

SHA = "0123456789abcdef0123456789abcdef01234567"


def test_the_requested_commit_must_be_the_checkouts() -> None:
    git = {"commit": SHA, "dirty": "false"}
    assert check_commit(git, requested=None) == git
    assert check_commit(git, requested=SHA[:12])["requested"] == SHA[:12]  # a short SHA is fine
    with pytest.raises(
        UsageError, match=rf"commit {'f' * 40}: the checkout that runs this release is at {SHA}"
    ):
        check_commit(git, requested="f" * 40)
    unknown = {"commit": "unknown", "dirty": "unknown"}
    assert check_commit(unknown, requested=SHA)["requested"] == SHA  # recorded, not checkable


def test_the_requested_commit_becomes_a_lineage_tag() -> None:
    tags = lineage_tags(
        git={"commit": SHA, "dirty": "false", "requested": SHA},
        data_sha256="d",
        suite_sha256="s",
        suite_version=1,
        training_config_sha256="t",
        training_code_sha256=None,
        holdout_sha256="h",
        source="trained",
    )
    assert tags["slipway.requested_commit"] == SHA and tags["slipway.git_commit"] == SHA


def _result(**kw: object) -> ReleaseResult:
    base: dict[str, object] = {
        "decision": "promoted",
        "stage": "canary",
        "model_name": "m",
        "model_version": "7",
        "commit": SHA,
        "image": {"record": {"digest": "sha256:abc", "reference": "reg/m@sha256:abc"}},
        "deploy": {"stable_version": "7"},
        "reasons": ["gate passed", "canary promoted: 4 steps"],
    }
    return ReleaseResult.model_validate({**base, **kw})


def test_the_summary_table_round_trips_through_the_artifact_format() -> None:
    import json

    rows = _result().summary_rows()
    summary = parse_table(json.dumps(rows))  # the API returns table data as JSON text
    assert summary["decision"] == "promoted" and summary["model_version"] == "7"
    assert summary["image_reference"] == "reg/m@sha256:abc" and summary["commit"] == SHA
    assert summary["reasons"].splitlines() == ["gate passed", "canary promoted: 4 steps"]
    with pytest.raises(RemoteRunError, match="expected a table"):
        parse_table('{"not": "rows"}')


@pytest.mark.parametrize(
    ("state", "decision", "code"),
    [
        ("Completed", "promoted", 0),
        ("Completed", "registered", 0),
        ("Completed", "rejected", 1),
        ("Completed", "rolled_back", 1),
        ("Completed", "error", 2),
        ("Failed", "promoted", 2),  # a summary from a run that then failed is not a success
        ("Crashed", "", 2),
        ("TimedOut", "", 2),
    ],
)
def test_exit_codes_follow_the_release_contract(state: str, decision: str, code: int) -> None:
    outcome = RemoteOutcome(
        deployment="release/release",
        flow_run_id="id",
        flow_run_name="release-x",
        state=state,
        state_message=None,
        summary={"decision": decision} if decision else {},
    )
    assert outcome.exit_code() == code


def test_job_summary_names_decision_version_digest_commit_and_links() -> None:
    outcome = RemoteOutcome(
        deployment="release/release",
        flow_run_id="abc",
        flow_run_name="release-0123456789ab",
        state="Completed",
        state_message=None,
        summary=parse_table(_result().summary_rows()),
        ui_url="http://prefect.example/runs/flow-run/abc",
    )
    text = job_summary(outcome, tracking_uri="https://mlflow.example")
    assert "promoted" in text and "m version 7" in text and "reg/m@sha256:abc" in text and SHA in text
    assert "[Prefect flow run](http://prefect.example/runs/flow-run/abc)" in text
    assert "[MLflow version](https://mlflow.example/#/models/m/versions/7)" in text
    failed = RemoteOutcome(
        deployment="release/release",
        flow_run_id="abc",
        flow_run_name="r",
        state="Failed",
        state_message="Flow run encountered an exception: UsageError: commit x",
    )
    assert "**The flow run ended Failed**: Flow run encountered an exception" in job_summary(
        failed, tracking_uri=None
    )


def test_mlflow_links_only_for_http_tracking_servers() -> None:
    assert mlflow_version_url("sqlite:///x.db", model_name="m", version="1") is None
    assert (
        mlflow_version_url("http://h:5000/", model_name="m", version="1")
        == "http://h:5000/#/models/m/versions/1"
    )
