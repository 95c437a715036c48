"""The Markdown a CI job writes into its summary page for one triggered release."""

from __future__ import annotations

from slipway.orchestration.remote import RemoteOutcome

_ICON = {"promoted": "✅", "registered": "✅", "rejected": "⛔", "rolled_back": "↩️"}


def mlflow_version_url(tracking_uri: str | None, *, model_name: str, version: str) -> str | None:
    """Pure; the MLflow UI page of a version when the tracking URI is an http(s) server, else None."""
    if not tracking_uri or not tracking_uri.startswith(("http://", "https://")) or not version:
        return None
    return f"{tracking_uri.rstrip('/')}/#/models/{model_name}/versions/{version}"


def job_summary(outcome: RemoteOutcome, *, tracking_uri: str | None) -> str:
    """Pure; decision, model version, image digest, commit and links as GitHub-flavoured Markdown."""
    s = outcome.summary
    decision = outcome.decision
    lines = [
        f"## Slipway release: {_ICON.get(decision, '❌')} {decision}",
        "",
        "| | |",
        "|---|---|",
        f"| Prefect run | {outcome.flow_run_name} ({outcome.state}) |",
        f"| stage reached | {s.get('stage') or '-'} |",
        f"| model | {s.get('model_name') or '-'} version {s.get('model_version') or '-'} |",
        f"| serving now | version {s.get('serving_version') or '-'} |",
        f"| image | `{s.get('image_reference') or s.get('image_digest') or '-'}` |",
        f"| commit | `{s.get('commit') or '-'}` |",
        f"| data | `{s.get('data') or '-'}` |",
    ]
    links = []
    if outcome.ui_url:
        links.append(f"[Prefect flow run]({outcome.ui_url})")
    mlflow = mlflow_version_url(
        tracking_uri, model_name=s.get("model_name", ""), version=s.get("model_version", "")
    )
    if mlflow:
        links.append(f"[MLflow version]({mlflow})")
    if links:
        lines.append(f"| links | {' · '.join(links)} |")
    if decision == "error":
        lines += ["", f"**The flow run ended {outcome.state}**: {outcome.state_message or '(no message)'}"]
    elif outcome.state_message:
        lines += ["", f"**{outcome.state}**: {outcome.state_message}"]
    reasons = [r for r in s.get("reasons", "").splitlines() if r.strip()]
    if reasons:
        lines += ["", "### Reasons", *[f"- {r}" for r in reasons]]
    return "\n".join(lines) + "\n"
