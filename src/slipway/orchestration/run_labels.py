"""What a release's Prefect flow run shows where people look first: its name, its tags, its final state.

Final states (the runs list shows their names; `prefect.flow-run.<name>` is the event automations match):

| decision | Prefect state | type |
|---|---|---|
| promoted, registered | `Completed`, message "promoted v7 (champion was v6)" | COMPLETED |
| rejected | `Rejected`, message "rejected at quality_gate: accuracy 0.9366 < 0.9589 required ..." | FAILED |
| rolled_back | `RolledBack`, message "rolled back v8 at canary: ...; v7 serves" | FAILED |
| error | `Failed`, message the error | FAILED |

A rejected or rolled-back release is FAILED-typed so that everything that watches failures (`prefect
deployment run --watch` exits 1, a GitHub job fails, an automation on "any failed run" fires) sees
that the commit did not ship, while its own name keeps it apart from an error (`Failed`): filter on
the state name, or match `prefect.flow-run.Rejected` / `prefect.flow-run.RolledBack` in an automation.

Pure functions only; `tasks/run_labels.py` applies them through the Prefect API.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from slipway.release.result import ReleaseResult

STATE_OF_DECISION: Final[dict[str, str]] = {
    "promoted": "Completed",
    "registered": "Completed",
    "rejected": "Rejected",
    "rolled_back": "RolledBack",
    "error": "Failed",
}
DECISION_OF_STATE: Final[dict[str, str]] = {"Rejected": "rejected", "RolledBack": "rolled_back"}

TRIGGER_TAG: Final = "trigger:"
MESSAGE_LIMIT: Final = 500  # characters of a state message (the UI shows it beside the run)


@dataclass(frozen=True)
class FinalState:
    """The Prefect state a release ends in: its type (failed or completed), name and message."""

    failed: bool
    name: str
    message: str


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def final_state(result: ReleaseResult) -> FinalState:
    """Pure; the state a release with this result ends in (table in the module docstring)."""
    v = f"v{result.model_version}" if result.model_version else "no version"
    serving = result.deploy.get("stable_version")
    decision = result.decision
    if decision == "promoted":
        previous = result.deploy.get("previous_champion")
        was = f"champion was v{previous}" if previous else "first champion"
        message = f"promoted {v} ({was})"
    elif decision == "registered":
        message = f"registered {v} as challenger (no canary: deploy.target none)"
    elif decision == "rolled_back":
        message = f"rolled back {v} at canary: {result.why()}" + (f"; v{serving} serves" if serving else "")
    elif decision == "rejected":
        message = f"rejected at {result.stage}: {result.why()}"
    else:
        message = f"error at {result.stage}: {result.why()}"
    name = STATE_OF_DECISION.get(decision, "Failed")
    return FinalState(failed=name != "Completed", name=name, message=_clip(message, MESSAGE_LIMIT))


def trigger_of(*, tags: Iterable[str], deployment: bool, auto_scheduled: bool) -> str:
    """Pure; what started the run: a `trigger:X` tag (CI, retrain), the schedule, a person (a deployment
    run from the UI or `prefect deployment run`), or `local` (the CLI or a test, no deployment)."""
    for tag in tags:
        if tag.startswith(TRIGGER_TAG) and len(tag) > len(TRIGGER_TAG):
            return tag[len(TRIGGER_TAG) :]
    if auto_scheduled:
        return "schedule"
    return "manual" if deployment else "local"


def run_name(*, model: str, commit: str | None, trigger: str, unique: str) -> str:
    """Pure; `<model> · <commit[:8]> · <trigger> · <unique>` (unique: the name Prefect generated)."""
    short = (commit or "")[:8] or "no-commit"
    return f"{model} · {short} · {trigger} · {unique}"


def is_labelled(name: str) -> bool:
    """Pure; True for a name `run_name` made (a retried run keeps it)."""
    return name.count(" · ") >= 3


def start_tags(*, model: str, commit: str | None, trigger: str) -> list[str]:
    """Pure; the tags a run gets once its inputs are known (model, commit, trigger)."""
    tags = [f"model:{model}", f"{TRIGGER_TAG}{trigger}"]
    return tags + ([f"commit:{commit[:8]}"] if commit else [])


def end_tags(result: ReleaseResult) -> list[str]:
    """Pure; the tags a finished release adds: its decision and its version (when one was registered)."""
    tags = [f"decision:{result.decision}"]
    return tags + ([f"version:{result.model_version}"] if result.model_version else [])


def merged_tags(existing: Iterable[str], new: Iterable[str]) -> list[str]:
    """Pure; `existing` plus `new`, where a new `key:value` replaces an existing tag with the same key."""
    fresh = list(dict.fromkeys(new))
    keys = {t.split(":", 1)[0] for t in fresh if ":" in t}
    kept = [t for t in existing if not (":" in t and t.split(":", 1)[0] in keys) and t not in fresh]
    return kept + fresh


def decision_of_run(state_name: str, summary_decision: str | None) -> str:
    """Pure; a finished release run's decision from its Prefect state name and its `release-summary`.

    Completed: the summary's decision (promoted or registered; `error` without one). Rejected and
    RolledBack say it themselves. Anything else (Failed, Crashed, Cancelled, TimedOut) is an error,
    whatever the summary says (a run that failed after writing it did not finish its work).
    """
    if state_name == "Completed":
        return summary_decision or "error"
    return DECISION_OF_STATE.get(state_name, "error")
