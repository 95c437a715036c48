"""Watching releases the way a team does: a real Prefect server + UI and a real MLflow server on loopback,
three releases (promoted, rolled back by its canary, rejected by the validation gate), then the pages
people open, in a real headless browser (Debian's chromium): the runs list, the canary's run with its
progress artifact (opened while the canary runs), the evidence links into MLflow, the version's page.

Screenshots of each page go to $SLIPWAY_SCREENSHOTS_DIR (CI keeps them) or `<basetemp>/.../screenshots`;
their paths are printed. Skipped, saying why, where chromium is missing (`.ci/run` installs it).
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pytest
import yaml

from slipway.data.generate import Corruption
from slipway.release.evidence import is_url
from slipway.validation.offline_docs import remote_assets
from tests.integration.conftest import REPO
from tests.support.browser import Page, chromium_path, headless_chromium
from tests.support.servers import Servers, clean_env, team_servers

CHROMIUM = chromium_path()
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="needs a headless chromium: apt-get install -y chromium (.ci/run installs it) or set SLIPWAY_CHROMIUM",
    ),
]

MODEL = "breast-cancer-mlp"
RELEASE_TIMEOUT_S = 600.0


@dataclass
class Watched:
    """The servers, the three releases' results (by decision), and where the screenshots go."""

    servers: Servers
    results: dict[str, dict[str, Any]]
    shots: Path
    taken: list[Path] = field(default_factory=list)

    def run_page(self, decision: str) -> str:
        return f"{self.servers.prefect_ui}/runs/flow-run/{self.results[decision]['flow_run_id']}"

    def shoot(self, page: Page, name: str) -> Path:
        path = page.screenshot(self.shots / name)
        self.taken.append(path)
        return path


def _config(folder: Path) -> Path:
    """The repo's config, made quick: fewer epochs, FP32 only, a short canary on the local target."""
    raw = yaml.safe_load((REPO / "slipway.yaml").read_text())
    raw["validation"]["suite"] = str(REPO / raw["validation"]["suite"])
    raw["training"]["params"]["epochs"] = 20
    raw["optimize"]["candidates"] = ["fp32"]
    raw["optimize"]["bench"] = {
        "threads": 1,
        "batches": [1],
        "warmup": 2,
        "rounds": 3,
        "iterations": 5,
        "load_repeats": 1,
    }
    raw["deploy"] = {"target": "local", "load_rps": 100}
    raw["canary"].update(
        {
            "interval_s": 4,
            "shadow_intervals": 1,
            "steps": [25, 100],
            "readiness_deadline_s": 60,
            "deadline_s": 120,
        }
    )
    path = folder / "slipway.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _batch(folder: Path, seed: int, corrupt: Corruption | None = None) -> str:
    from slipway.config import PipelineConfig
    from slipway.data.batch_io import write_batch
    from slipway.data.generate import make_batch
    from slipway.data.reference import load_reference

    path = folder / f"batch-{seed}.csv"
    write_batch(make_batch(load_reference(PipelineConfig().data), rows=300, seed=seed, corrupt=corrupt), path)
    return str(path)


def _artifacts(servers: Servers, run_id: str) -> dict[str, Any]:
    """key -> the newest artifact of that key on the run."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with SyncPrefectClient(servers.api_url) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[UUID(run_id)]))
        )
    return {a.key: a for a in sorted(found, key=lambda a: a.created) if a.key}


def _progress_run(servers: Servers, running: Future[Any], *, known: set[str]) -> str | None:
    """Blocking until a run other than `known` has a `canary-progress` artifact (its canary started), or
    the release ended."""
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    with SyncPrefectClient(servers.api_url) as client:
        while not running.done():
            arts = client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["canary-progress"]))
            )
            runs = {str(a.flow_run_id) for a in arts if a.flow_run_id is not None} - known
            if runs:
                return runs.pop()
            time.sleep(0.5)
    return None


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    assert CHROMIUM is not None
    with headless_chromium(CHROMIUM, log=tmp_path_factory.mktemp("chromium") / "chromium.log") as tab:
        yield tab


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory, page: Page) -> Iterator[Watched]:
    """Three releases on the servers: promoted (first), rolled back (a NaN canary), rejected (a missing column)."""
    from flows.release import run_release
    from prefect.settings import PREFECT_API_URL, PREFECT_LOCAL_STORAGE_PATH, temporary_settings

    from slipway.deploy.local import LocalTarget
    from slipway.settings import Settings

    tmp = tmp_path_factory.mktemp("watch")
    shots = Path(os.environ.get("SLIPWAY_SCREENSHOTS_DIR") or tmp / "screenshots")
    env = {
        **clean_env(),
        "BIN": str(REPO / ".venv" / "bin"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "GX_ANALYTICS_ENABLED": "false",
    }
    config = _config(tmp)
    with team_servers(REPO, tmp / "servers", env=env) as servers, pytest.MonkeyPatch.context() as mp:
        mp.setenv("SLIPWAY_HOME", str(tmp / "home"))
        mp.setenv("SLIPWAY_MLFLOW_TRACKING_URI", servers.mlflow)
        mp.setenv("SLIPWAY_IMAGE_BUILDER", "fake")
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.delenv("SLIPWAY_MLFLOW_UI_URL", raising=False)
        settings = {PREFECT_API_URL: servers.api_url, PREFECT_LOCAL_STORAGE_PATH: tmp / "results"}
        try:
            with temporary_settings(settings):
                watched = Watched(servers=servers, results={}, shots=shots)
                watched.results["promoted"] = run_release(data=_batch(tmp, 1), config_path=str(config))
                page.open(f"{servers.prefect_ui}/runs")  # the UI's code is cached before the canary starts
                page.wait_for_text("Runs")
                watched.results["rolled_back"] = _canary_watched_live(
                    watched, page, run_release, data=_batch(tmp, 2), config_path=str(config)
                )
                watched.results["rejected"] = run_release(
                    data=_batch(tmp, 3, Corruption.missing_column), config_path=str(config)
                )
                yield watched
        finally:
            LocalTarget(settings=Settings()).stop_all()
            if watched.taken:
                listing = "\n".join(str(p) for p in watched.taken)
                (shots / "screenshots.txt").write_text(listing + "\n")


def _canary_watched_live(watched: Watched, page: Page, run_release: Any, **kw: Any) -> dict[str, Any]:
    """The second release (a NaN canary, version 1's model accepted) in a thread; its run's Artifacts tab is
    opened as soon as its canary publishes progress, and screenshotted."""
    ctx = contextvars.copy_context()  # Prefect's settings (the API URL) live in context variables
    with ThreadPoolExecutor(max_workers=1) as pool:
        running = pool.submit(ctx.run, run_release, model_uri=f"models:/{MODEL}/1", canary_fault="nan", **kw)
        known = {r["flow_run_id"] for r in watched.results.values()}
        run_id = _progress_run(watched.servers, running, known=known)
        if run_id is not None:
            page.open(f"{watched.servers.prefect_ui}/runs/flow-run/{run_id}")
            page.wait_for_text("Artifacts")
            page.click_text("Artifacts")
            page.wait_for_text("canary-progress")
            watched.shoot(page, "1-canary-running-run-artifacts.png")
        result: dict[str, Any] = running.result(timeout=RELEASE_TIMEOUT_S)
    assert run_id is None or run_id == result["flow_run_id"]
    return result


def _say(capsys: pytest.CaptureFixture[str], path: Path) -> None:
    with capsys.disabled():
        print(f"\nscreenshot: {path}")


def test_the_three_releases_ended_as_their_decisions(
    watched: Watched, capsys: pytest.CaptureFixture[str]
) -> None:
    for shot in watched.taken:  # taken while the canary ran
        _say(capsys, shot)
    assert {d: r["decision"] for d, r in watched.results.items()} == {
        "promoted": "promoted",
        "rolled_back": "rolled_back",
        "rejected": "rejected",
    }, {d: r["reasons"] for d, r in watched.results.items()}


def test_the_runs_list_alone_tells_promoted_rolled_back_and_rejected_apart(
    watched: Watched, page: Page, capsys: pytest.CaptureFixture[str]
) -> None:
    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(watched.servers.api_url) as client:
        runs = {d: client.read_flow_run(UUID(r["flow_run_id"])) for d, r in watched.results.items()}
    states = {d: (r.state.type.value, r.state.name) for d, r in runs.items()}  # type: ignore[union-attr]
    assert states == {
        "promoted": ("COMPLETED", "Completed"),
        "rolled_back": ("FAILED", "RolledBack"),
        "rejected": ("FAILED", "Rejected"),
    }
    assert runs["promoted"].state.message.startswith("promoted v1")  # type: ignore[union-attr]
    assert runs["rolled_back"].state.message.startswith("rolled back v2 at canary")  # type: ignore[union-attr]
    for decision, run in runs.items():
        assert run.name.startswith(f"{MODEL} · ") and " · local · " in run.name, run.name
        assert f"decision:{decision}" in run.tags and "trigger:local" in run.tags, run.tags
    assert "version:2" in runs["rolled_back"].tags

    page.open(f"{watched.servers.prefect_ui}/runs")
    page.wait_for_text("RolledBack", "Rejected", "Completed", "decision:rolled_back", "decision:rejected")
    _say(capsys, watched.shoot(page, "2-runs-list.png"))


def test_the_canary_run_shows_its_progress_and_every_window(
    watched: Watched, page: Page, capsys: pytest.CaptureFixture[str]
) -> None:
    run_id = watched.results["rolled_back"]["flow_run_id"]
    arts = _artifacts(watched.servers, run_id)
    assert {"canary-progress", "canary-live", "canary-decisions", "release-evidence", "data-docs"} <= set(
        arts
    )
    decisions = watched.results["rolled_back"]["deploy"]["canary"]["decisions"]
    live = arts["canary-live"].data
    rows = json.loads(live) if isinstance(live, str) else live
    assert len(rows) == len(decisions) and rows[-1]["outcome"] == "rollback"
    assert (arts["canary-progress"].description or "").startswith("canary rolled_back")  # its last word
    assert "canary window" in (arts["canary-live"].description or "")  # the last window's line

    page.open(watched.run_page("rolled_back"))
    page.wait_for_text("Artifacts")
    page.click_text("Artifacts")
    page.wait_for_text("canary-progress", "canary-live", "release-evidence", "RolledBack")
    page.scroll_to_text("release-evidence")  # the cards of the decision, the evidence and the progress
    _say(capsys, watched.shoot(page, "3-rolled-back-run-artifacts.png"))
    page.open(f"{watched.servers.prefect_ui}/artifacts/artifact/{arts['canary-progress'].id}")
    page.wait_for_text("canary rolled_back", "Progress")
    _say(capsys, watched.shoot(page, "4-canary-progress-artifact.png"))


def test_every_evidence_link_opens_from_the_ui_and_the_plot_renders_inline(
    watched: Watched, page: Page, capsys: pytest.CaptureFixture[str]
) -> None:
    result = watched.results["rolled_back"]
    links = result["links"]
    mlflow = watched.servers.mlflow
    assert {"Prefect run", "MLflow version", "Data Docs", "canary plot", "release record (JSON)"} <= set(
        links
    )
    assert all(is_url(url) for url in links.values()), links  # nothing on a worker's disk
    assert links["Prefect run"] == watched.run_page("rolled_back")  # the browser opens it in the test above
    for label, url in links.items():
        if url.startswith(mlflow):  # the MLflow server answers every link (UI routes and files) itself
            assert httpx.get(url, timeout=30).status_code == 200, (label, url)

    evidence = _artifacts(watched.servers, result["flow_run_id"])["release-evidence"]
    page.open(f"{watched.servers.prefect_ui}/artifacts/artifact/{evidence.id}")
    page.wait_for_text("Evidence: rolled_back", "Data Docs")
    deadline = time.monotonic() + 30
    while not any(src.startswith(mlflow) and width > 0 for src, width in page.images()):
        assert time.monotonic() < deadline, f"the canary plot did not render: {page.images()}"
        time.sleep(0.5)
    hrefs = dict(page.links())
    assert hrefs.get("Data Docs") == links["Data Docs"] and links["Data Docs"].startswith(mlflow)
    _say(capsys, watched.shoot(page, "5-evidence-artifact.png"))

    page.open(links["Data Docs"])  # what a teammate's click opens: MLflow's viewer of the uploaded page
    page.wait_for_text(r"Path: \S*validation\.html")
    # MLflow's viewer renders the fetched page in a sandboxed iframe of a blob: URL (opaque to scripts)
    viewer = "[...document.querySelectorAll('iframe')].some(f => (f.src || '').startsWith('blob:'))"
    deadline = time.monotonic() + 30
    while not page.js(viewer):
        assert time.monotonic() < deadline, "MLflow's viewer never showed the Data Docs page"
        time.sleep(0.5)
    time.sleep(1)  # the iframe paints
    _say(capsys, watched.shoot(page, "6-data-docs-in-mlflow.png"))
    served = httpx.get(
        f"{mlflow}/get-artifact",
        params={"path": "slipway/data_docs/validation.html", "run_uuid": result["mlflow_run_id"]},
        timeout=30,
    )
    assert served.status_code == 200 and "Expectation" in served.text
    assert remote_assets(served.text) == []  # works offline: no CDN, no remote image


def test_the_mlflow_version_says_the_decision_and_links_to_the_prefect_run(
    watched: Watched, page: Page, capsys: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    client = MlflowClient(watched.servers.mlflow)
    rolled, first = client.get_model_version(MODEL, "2"), client.get_model_version(MODEL, "1")
    assert rolled.description.startswith("**rolled_back** at stage `canary`")
    assert (list(first.aliases), list(rolled.aliases)) == (["champion"], [])  # no stale challenger
    assert all(len(v) <= 500 for v in rolled.tags.values()) and "slipway.canary.checks" not in rolled.tags
    assert {"slipway/release.json", "slipway/canary.png", "slipway/canary.md"} <= {
        a.path for a in client.list_artifacts(rolled.run_id, "slipway")
    }

    page.open(f"{watched.servers.mlflow}/#/models/{MODEL}/versions/2")
    page.wait_for_text("rolled_back at stage canary", "Prefect run")
    assert dict(page.links()).get("Prefect run") == watched.run_page("rolled_back")
    _say(capsys, watched.shoot(page, "7-mlflow-version.png"))
