"""`slipway monitor` over a real MLflow registry and the monitor flow against a real Prefect API: a champion
with its recorded training reference, batches and prediction logs judged, and one retrain per drift episode."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from slipway.config import PipelineConfig, load_config
from slipway.data.batch_io import write_batch
from slipway.data.generate import Corruption, make_batch
from slipway.data.reference import Reference, load_reference
from slipway.errors import MonitorError
from slipway.monitoring.reference import REFERENCE_DOC, build_reference, sample_rows, to_bytes
from slipway.monitoring.run import MonitorResult, run_monitor
from slipway.names import Tag
from slipway.registry.base import ModelRegistry, Registration
from slipway.registry.factory import make_registry
from slipway.serving.predlog import PredictionLog
from slipway.settings import Settings

pytestmark = pytest.mark.integration


class Project:
    """A config, its reference, a registry whose champion carries a drift reference, and batches."""

    def __init__(self, config: Path, tmp: Path) -> None:
        self.config_path = config
        self.cfg: PipelineConfig = load_config(config)
        self.settings = Settings()
        self.ref: Reference = load_reference(
            self.cfg.data, base_dir=self.cfg.base_dir, work_dir=self.settings.work_path()
        )
        self.registry: ModelRegistry = make_registry(self.settings, self.cfg)
        self.tmp = tmp

    def champion(self) -> str:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        pool = self.ref.pool
        x, y = self.ref.x(pool), self.ref.target.encode(pool[self.ref.label])
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x, y)
        keep = sample_rows(len(x), max_rows=self.cfg.monitor.reference_rows, seed=0)
        reference = build_reference(
            features=self.ref.features,
            x=x[keep],
            outputs=model.predict_proba(x[keep]),
            task=self.ref.task,
            classes=self.ref.target.classes,
        )
        version = self.registry.register(
            Registration(
                model_name=self.cfg.registry.model_name,
                module=model,
                input_example=x[:2],
                params={},
                metrics={},
                tags={Tag.MODEL_OUTPUT: "probabilities"},
                release_key=f"monitor-test-{time.time()}",
                documents={REFERENCE_DOC: to_bytes(reference)},
            )
        )
        self.registry.set_champion(model_name=version.name, version=version.version, tags={})
        return version.version

    def batch(self, name: str, *, seed: int, rows: int = 1000, shift: str | None = None, **kw: Any) -> Path:
        frame = make_batch(self.ref, rows=rows, seed=seed, **kw)
        if shift is not None:
            frame[shift] = frame[shift] + self.ref.pool[shift].std()
        path = self.tmp / f"{name}.csv"
        write_batch(frame, path)
        return path

    def monitor(self, **kw: Any) -> MonitorResult:
        return run_monitor(
            settings=self.settings, cfg=self.cfg, registry=self.registry, target=self.ref.target, **kw
        )


@pytest.fixture()
def project(home: Path, tmp_path: Path, config_file: Callable[..., Path]) -> Project:
    logs = str(tmp_path / "logs" / "*.jsonl")
    return Project(config_file(overrides={"monitor": {"logs": [logs], "min_rows": 50}}), tmp_path)


def test_a_shifted_column_is_named_while_a_fresh_sample_passes_and_wrong_labels_breach(
    project: Project,
) -> None:
    version = project.champion()
    fresh = project.monitor(data=project.batch("fresh", seed=21))
    assert (fresh.verdict.status, fresh.verdict.exit_code, fresh.champion_version) == ("ok", 0, version)
    assert fresh.paths.html.is_file() and fresh.paths.plot.is_file() and fresh.paths.summary.is_file()
    assert fresh.metrics["accuracy"] > 0.9  # the batch carries its labels: live quality within the floors
    column = project.ref.features[3]
    shifted = project.monitor(data=project.batch("shifted", seed=21, shift=column))
    assert shifted.verdict.exit_code == 1
    assert {c.column for c in shifted.verdict.drifted} - {"prediction"} == {column}
    flipped = project.monitor(data=project.batch("flipped", seed=22, corrupt=Corruption.flipped_labels))
    assert flipped.verdict.status in ("breach", "drift_and_breach") and flipped.verdict.breached
    gauges = (project.settings.reports_path() / "monitor" / "slipway_monitor.prom").read_text()
    assert (
        f'slipway_monitor_quality_breach{{model="{project.cfg.registry.model_name}",version="{version}"}} 1'
        in gauges
    )
    missing = project.batch("missing", seed=23, corrupt=Corruption.missing_column)
    with pytest.raises(MonitorError, match="missing"):
        project.monitor(data=missing)


def _log(project: Project, path: Path, rows: np.ndarray, *, version: str, model: str | None = None) -> None:
    log = PredictionLog(sink="file", sample_rate=1.0, max_record_bytes=1 << 16, path=path, max_bytes=1 << 30)
    log.start()
    for i, row in enumerate(rows):
        log.record(
            request_id=f"{path.stem}-{i}",
            model_name=model or project.cfg.registry.model_name,
            model_version=version,
            inputs=row[None, :],
            outputs={"predictions": [{"label": 0, "probabilities": {"0": 0.9, "1": 0.1}}]},
        )
    log.stop()


def test_logs_are_read_across_rotation_torn_lines_and_other_models_and_bad_windows_are_errors(
    project: Project,
) -> None:
    version = project.champion()
    logs = project.tmp / "logs"
    x = project.ref.x(make_batch(project.ref, rows=400, seed=31))
    _log(project, logs / "a.jsonl", x[:200], version=version)
    (logs / "a.jsonl").rename(logs / "a.jsonl.1")  # rotated away, as RotatingFileHandler does
    _log(project, logs / "a.jsonl", x[200:], version=version)
    _log(project, logs / "b.jsonl", x[:30], version="9", model="another-model")
    _log(project, logs / "canary.jsonl", x[:25], version="99")  # a canary's answers: not the champion's
    with (logs / "a.jsonl").open("a") as fh:
        fh.write('{"event": "slipway.prediction", "ts": 1')  # torn: a writer was cut off
    result = project.monitor(since="1h")
    assert result.window.rows == 400 and result.window.versions == {version: 400}
    assert result.verdict.exit_code in (0, 1)
    notes = " | ".join(result.window.notes)
    assert (
        "torn" in notes and "other models" in notes and "25 rows other versions answered (v99: 25)" in notes
    )
    empty = project.monitor(since="1h", now=time.time() + 7200)  # nothing logged in that window
    assert (empty.verdict.status, empty.verdict.exit_code) == ("error", 2)
    _log(project, logs / "c.jsonl", np.zeros((3, len(project.ref.features) - 2), np.float32), version=version)
    with pytest.raises(MonitorError, match="width"):
        project.monitor(since="1h")


def test_the_monitor_flow_starts_exactly_one_retrain_per_drift_episode(project: Project) -> None:
    from flows.monitor import monitor
    from flows.retrain import retrain
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    version = project.champion()
    deployment_id = retrain.to_deployment(name="retrain").apply()  # no worker: its runs stay scheduled
    drifted = str(project.batch("drifted", seed=41, shift=project.ref.features[0]))
    fresh = str(project.batch("fresh", seed=42))
    config = str(project.config_path)

    def retrains() -> list[Any]:
        with get_client(sync_client=True) as client:
            return client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )

    first = monitor(config_path=config, data=drifted, retrain_deployment="retrain/retrain")
    second = monitor(config_path=config, data=drifted, retrain_deployment="retrain/retrain")
    assert first["retrain_flow_run_id"] and second["retrain_flow_run_id"] is None
    assert second["episode"] == first["episode"] == first["report_id"]
    runs = retrains()
    assert len(runs) == 1 and f"trigger:drift:{first['report_id']}" in runs[0].tags
    champion = project.registry.get_version(model_name=project.cfg.registry.model_name, version=version)
    assert champion.tags[Tag.MONITOR_EPISODE] == first["report_id"]
    quiet = monitor(config_path=config, data=fresh, retrain_deployment="retrain/retrain")
    assert quiet["status"] == "ok" and quiet["retrain_flow_run_id"] is None
    again = monitor(config_path=config, data=drifted, retrain_deployment="retrain/retrain")
    assert again["retrain_flow_run_id"] and len(retrains()) == 2  # a new episode after a quiet window
