"""Evidence a teammate can open: where a release's reports live, as links that work from another machine.

Every report goes onto the MLflow run of the release (the version's run, or the rejected attempt's):
the Data Docs page (self-contained, no CDN), the canary plot, report and data, the release record.
With an MLflow server (`SLIPWAY_MLFLOW_UI_URL`, or an http(s) tracking URI) the links point into its
UI; without one (SQLite) there is nothing another machine could open, so they are local paths, said so.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Final

from slipway.registry.links import RunLinks

DATA_DOCS: Final = "slipway/data_docs/validation.html"
CANARY_PLOT: Final = "slipway/canary.png"
CANARY_REPORT: Final = "slipway/canary.md"
CANARY_DATA: Final = "slipway/canary.json"
RELEASE_RECORD: Final = "slipway/release.json"

# label -> run file, in the order people want them
RUN_FILES: Final[tuple[tuple[str, str], ...]] = (
    ("Data Docs", DATA_DOCS),
    ("canary plot", CANARY_PLOT),
    ("canary report", CANARY_REPORT),
    ("canary data (JSON)", CANARY_DATA),
    ("release record (JSON)", RELEASE_RECORD),
)
IMAGE_SUFFIXES: Final = (".png", ".svg", ".jpg")


def evidence_links(
    *,
    run: RunLinks | None,
    run_files: Collection[str],
    model_name: str | None,
    version: str | None,
    prefect_run_url: str | None,
    local: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Pure; label -> URL for everything a person may open about a release; `local` paths where no server serves them."""
    links: dict[str, str] = {}
    if prefect_run_url:
        links["Prefect run"] = prefect_run_url
    if run is not None:
        if model_name and version:
            links["MLflow version"] = run.version_page(model_name, version)
        links["MLflow run"] = run.run_page()
        for label, path in RUN_FILES:
            if path in run_files:
                links[label] = run.artifact_page(path)
        if CANARY_PLOT in run_files:
            links["canary plot (image)"] = run.artifact_file(CANARY_PLOT)
    for label, path in (local or {}).items():
        links.setdefault(label, path)
    return links


def is_url(value: str) -> bool:
    """Pure; True for an http(s) link (a local path is shown as text: a browser would not open it)."""
    return value.startswith(("http://", "https://"))


def links_markdown(links: Mapping[str, str], *, images: bool = True) -> str:
    """Pure; one bullet per link (local paths as code, "on the worker"); images inline when `images`."""
    lines = []
    for label, target in links.items():
        if label.endswith("(image)"):
            if images and is_url(target):
                lines += ["", f"![{label}]({target})", ""]
            continue
        lines.append(f"* [{label}]({target})" if is_url(target) else f"* {label}: `{target}` (on the worker)")
    return "\n".join(lines).strip()


def version_description(*, decision: str, stage: str, why: str, links: Mapping[str, str]) -> str:
    """Pure; the short Markdown on a model version's MLflow page: decision, why, where the reports are."""
    reports = [
        f"[{label}]({url})"
        for label, url in links.items()
        if is_url(url) and label != "MLflow version" and not label.endswith("(image)")
    ]
    lines = [f"**{decision}** at stage `{stage}`: {_clip(why, 300)}"]
    if reports:
        lines += ["", " · ".join(reports)]
    return "\n".join(lines)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
