"""`slipway monitor` as one library call: the champion, its drift reference, a live window, the verdict, the report."""

from __future__ import annotations

import json
import math
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from slipway.config import PipelineConfig, QualityGateConfig
from slipway.errors import MonitorError, RegistryError
from slipway.evaluation.metrics import compute_metrics
from slipway.evaluation.scoring import class_output, predict
from slipway.evaluation.target import Target
from slipway.gate.quality import GateDecision, decide
from slipway.monitoring import report as rep
from slipway.monitoring.decision import MonitorVerdict, monitor_verdict
from slipway.monitoring.drift import ColumnDrift, DriftRun, detect_drift
from slipway.monitoring.reference import REFERENCE_DOC, DriftReference, from_bytes
from slipway.monitoring.window import (
    LiveWindow,
    join_labels,
    predicted_labels,
    read_labels,
    window_from_batch,
)
from slipway.names import Tag
from slipway.registry.base import ModelRegistry, VersionInfo
from slipway.settings import Settings

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNIT = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str) -> float:
    """Pure; seconds of `30s`, `15m`, `1h`, `2d`; MonitorError naming the text otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise MonitorError(f"--since {text!r}: expected a number and a unit s, m, h or d (e.g. 30m, 1h)")
    return float(match.group(1)) * _UNIT[match.group(2)]


@dataclass(frozen=True)
class MonitorResult:
    """One monitor run: the verdict and everything it was made from, and where its report is."""

    report_id: str
    created_at: str
    model_name: str
    champion_version: str
    source: str
    window: LiveWindow
    reference_rows: int
    alpha: float
    verdict: MonitorVerdict
    paths: rep.ReportPaths
    metrics: dict[str, float]

    def summary(self) -> dict[str, Any]:
        """Pure; the JSON summary (`summary.json`, `--json`)."""
        v = self.verdict
        return {
            "report_id": self.report_id,
            "created_at": self.created_at,
            "model_name": self.model_name,
            "champion_version": self.champion_version,
            "source": self.source,
            "status": v.status,
            "exit_code": v.exit_code,
            "rule": v.rule,
            "reasons": list(v.reasons),
            "drifted_columns": [c.column for c in v.drifted],
            "breached": list(v.breached),
            "window": {
                "rows": self.window.rows,
                "versions": self.window.versions,
                "labelled_rows": 0 if self.window.labelled is None else len(self.window.labelled),
                "notes": list(self.window.notes),
            },
            "reference_rows": self.reference_rows,
            "alpha": self.alpha,
            "live_metrics": self.metrics,
            "evidence": v.evidence,
            "files": {
                "summary": str(self.paths.summary),
                "html": str(self.paths.html) if self.paths.html.is_file() else None,
                "plot": str(self.paths.plot) if self.paths.plot.is_file() else None,
            },
        }

    def summary_json(self) -> dict[str, Any]:
        """Pure; `summary()` with only JSON types (numpy scalars as numbers)."""
        loaded: dict[str, Any] = json.loads(json.dumps(self.summary(), default=_json))
        return loaded

    def lines(self) -> list[str]:
        """Pure; what the CLI prints."""
        v = self.verdict
        head = (
            f"{self.model_name} v{self.champion_version}: {v.status.upper()} "
            f"({self.window.rows} live rows from {self.source} vs {self.reference_rows} reference rows)"
        )
        files = [f"report: {self.paths.html}"] if self.paths.html.is_file() else []
        return [
            head,
            *[f"  {r}" for r in v.reasons],
            *[f"  note: {n}" for n in self.window.notes],
            *files,
            f"summary: {self.paths.summary}",
        ]


def champion_of(registry: ModelRegistry, *, model_name: str) -> VersionInfo:
    """Blocking read; the serving champion; MonitorError when there is none."""
    champion = registry.get_alias(model_name=model_name, alias="champion")
    if champion is None:
        raise MonitorError(f"model {model_name!r} has no champion: release one before monitoring it")
    return champion


def load_drift_reference(registry: ModelRegistry, version: VersionInfo) -> DriftReference:
    """Blocking (one artifact download); the reference the release recorded; MonitorError when it has none."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = registry.fetch_artifact(
                model_name=version.name, version=version.version, path=REFERENCE_DOC, dst=Path(tmp)
            )
        except RegistryError as exc:
            raise MonitorError(
                f"champion {version.name} v{version.version} has no drift reference ({REFERENCE_DOC}): it was "
                f"released before monitoring existed; release it again ({exc})"
            ) from exc
        return from_bytes(path.read_bytes(), source=f"{version.uri}/{REFERENCE_DOC}")


def live_quality(
    window: LiveWindow, *, target: Target, gate: QualityGateConfig
) -> tuple[GateDecision | None, dict[str, float]]:
    """Pure; the labelled rows' metrics checked against the quality gate's floors (None without labels)."""
    if window.y is None or window.labelled is None or not len(window.labelled):
        return None, {}
    outputs = window.outputs[window.labelled]
    finite = np.isfinite(outputs).reshape(len(outputs), -1).all(axis=1)
    metrics = compute_metrics(target.task, window.y[finite], outputs[finite]) if finite.any() else {}
    metrics = {k: float(v) for k, v in metrics.items()}
    floors = QualityGateConfig(thresholds=gate.thresholds, max_regression={})
    return decide(
        challenger=metrics, champion=None, champion_version=None, cfg=floors, task=target.task
    ), metrics


def judge(
    window: LiveWindow,
    ref: DriftReference,
    *,
    alpha: float,
    min_rows: int,
    target: Target,
    gate: QualityGateConfig,
) -> tuple[MonitorVerdict, DriftRun | None, dict[str, float]]:
    """Blocking (Evidently); the verdict on a window against the reference (no test below `min_rows`)."""
    quality, metrics = live_quality(window, target=target, gate=gate)
    matched = 0 if window.labelled is None else len(window.labelled)
    if window.rows < min_rows:
        verdict = monitor_verdict(
            rows=window.rows,
            min_rows=min_rows,
            columns=(),
            quality=quality,
            labels_given=window.labels_given,
            labels_matched=matched,
        )
        return verdict, None, metrics
    run = detect_drift(
        features=ref.features,
        ref_x=ref.x,
        ref_pred=ref.predictions,
        cur_x=window.x,
        cur_pred=predicted_labels(window.outputs, task=ref.task, classes=ref.classes),
        categorical_prediction=ref.task != "regression",
        alpha=alpha,
    )
    verdict = monitor_verdict(
        rows=window.rows,
        min_rows=min_rows,
        columns=run.columns,
        quality=quality,
        labels_given=window.labels_given,
        labels_matched=matched,
    )
    return verdict, run, metrics


def _min_p(columns: tuple[ColumnDrift, ...]) -> float | None:
    finite = [c.p_value for c in columns if c.tested]
    return min(finite) if finite else None


def write_report(
    result: MonitorResult, run: DriftRun | None, *, root: Path, textfile: Path, now: float
) -> None:
    """Blocking; HTML (when tests ran), summary, history line, drift plot and the Prometheus textfile."""
    result.paths.folder.mkdir(parents=True, exist_ok=True)
    if run is not None:
        run.save_html(str(result.paths.html))
    columns = tuple(run.columns) if run is not None else ()
    history = rep.append_history(
        root,
        {
            "report_id": result.report_id,
            "created_at": result.created_at,
            "model_name": result.model_name,
            "version": result.champion_version,
            "status": result.verdict.status,
            "rows": result.window.rows,
            "drifted_columns": len(result.verdict.drifted),
            "min_p_value": _min_p(columns),
            "threshold": columns[0].threshold if columns else None,
        },
    )
    rep.plot_history(history, model_name=result.model_name, path=result.paths.plot)
    rep.write_atomic(result.paths.summary, json.dumps(result.summary_json(), indent=2, sort_keys=True))
    if result.verdict.status != "error":
        rep.write_atomic(
            textfile,
            rep.metrics_text(
                model_name=result.model_name,
                version=result.champion_version,
                drift=bool(result.verdict.drifted),
                drifted=len(result.verdict.drifted),
                breach=bool(result.verdict.breached),
                now=now,
            ),
        )


def _json(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.integer, np.floating)):
        return value.item()
    return str(value)


def _with_features(cfg: PipelineConfig, data: Path, *, settings: Settings) -> Path:
    """Blocking; a feature-store project's batch (entities) joined with its features, else `data` as it is."""
    from slipway.features.factory import make_feature_store
    from slipway.features.joined import joined_file

    store = make_feature_store(cfg, settings=settings)
    return data if store is None else joined_file(store, data, work_dir=settings.work_path())


def run_monitor(
    *,
    settings: Settings,
    cfg: PipelineConfig,
    registry: ModelRegistry,
    target: Target,
    data: Path | None = None,
    since: str | None = None,
    labels: Path | None = None,
    now: float | None = None,
) -> MonitorResult:
    """Blocking (seconds: the champion's reference, the window, Evidently); judges one window and writes its
    report under `<reports>/monitor/<id>/`. MonitorError (exit 2) when it cannot judge at all."""
    from slipway.monitoring.logs import window_from_logs

    now = time.time() if now is None else now
    model_name = cfg.registry.model_name
    champion = champion_of(registry, model_name=model_name)
    ref = load_drift_reference(registry, champion)
    if data is not None:
        data = _with_features(cfg, data, settings=settings)
        model = registry.load_model(uri=champion.uri)
        output = class_output(champion.tags.get(Tag.MODEL_OUTPUT), fallback=cfg.training.output)
        window = window_from_batch(
            data,
            features=ref.features,
            target=target,
            answer=lambda x: predict(model, x, target=target, output=output),
        )
    else:
        seconds = parse_duration(since or cfg.monitor.since)
        window = window_from_logs(
            cfg,
            model_name=model_name,
            version=champion.version,
            features=ref.features,
            target=target,
            since=now - seconds,
        )
    if labels is not None:
        window = join_labels(window, read_labels(labels, label=target.label), target=target)
    verdict, run, metrics = judge(
        window,
        ref,
        alpha=cfg.monitor.alpha,
        min_rows=cfg.monitor.min_rows,
        target=target,
        gate=cfg.quality_gate,
    )
    report_id = rep.new_report_id(now)
    root = settings.reports_path() / "monitor"
    result = MonitorResult(
        report_id=report_id,
        created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
        model_name=model_name,
        champion_version=champion.version,
        source=window.source,
        window=window,
        reference_rows=ref.rows,
        alpha=cfg.monitor.alpha,
        verdict=verdict,
        paths=rep.report_paths(root, report_id),
        metrics=metrics,
    )
    textfile = cfg.monitor.metrics_textfile or root / "slipway_monitor.prom"
    write_report(
        result,
        run,
        root=root,
        textfile=cfg.resolve(textfile),
        now=now,
    )
    return result
