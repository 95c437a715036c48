"""`make bench`, monitor part: how long the monitor takes to judge logged traffic, and how right it is.

Rows come from one distribution: a smoothed bootstrap of sklearn's breast_cancer (a row drawn with
replacement from the 569 rows, plus Gaussian noise of `JITTER` x that feature's std: a draw from a Gaussian
kernel density estimate). A fitted StandardScaler + LogisticRegression answers them; the drift reference is
`REFERENCE_ROWS` such rows with its answers (`build_reference`), as a release records it.

1. Wall time of the judging path over 10k and 100k logged rows: prediction logs written by `PredictionLog`
   itself (file sink, sample rate 1, one row per request, answers by the server's `postprocess`), then read
   (`read_prediction_logs`), the window built, `detect_drift`, `monitor_verdict` and the HTML report, each
   timed; also `run_monitor` end to end on an in-memory registry, and Evidently's import in a fresh process.
2. False alarms: >= 100 seeded windows of `WINDOW_ROWS` rows drawn i.i.d. from the reference's
   distribution; the share whose verdict is not "ok" at the default alpha (0.01). Target <= 5%.
3. Detection: >= 100 seeded windows with ONE feature shifted by `SHIFT_SIGMA` x its reference std (window k
   shifts feature k mod 30, upwards for k mod 60 < 30, downwards otherwise); the share whose verdict is
   drift naming that feature. Target >= 95%.
A cross-check judges many more no-drift windows by the tests Evidently runs (scipy, without the report:
~0.05 s instead of ~2-4 s a window), against this reference and against others, and counts how often it
flags exactly what detect_drift flagged: 100 windows cannot tell a 5% false-alarm rate from 6%.
Writes OUT/monitor.json and OUT/monitor.md. ~9 min on 2 cores: Evidently's Report.run renders its plotly
widgets whether or not the HTML is saved, ~2-4 s per 1,000-row window.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any, Final

import numpy as np

from slipway.config import DataConfig, MonitorConfig, PipelineConfig
from slipway.data.reference import load_reference
from slipway.evaluation.target import Target
from slipway.monitoring.decision import MonitorVerdict, monitor_verdict
from slipway.monitoring.drift import detect_drift, prediction_column
from slipway.monitoring.logs import output_matrix, row_ids
from slipway.monitoring.reference import REFERENCE_DOC, DriftReference, build_reference, to_bytes
from slipway.monitoring.window import LiveWindow, predicted_labels
from slipway.serving.bundle import BundleMeta
from slipway.serving.predlog import PredictionLog
from slipway.serving.service import postprocess
from slipway.serving.settings import ServeSettings

DATASET: Final = "sklearn:breast_cancer"
ALPHA: Final = 0.01  # monitor.alpha's default (MonitorConfig): the rates are those of the shipped setting
REFERENCE_ROWS: Final = 5000
WINDOW_ROWS: Final = 1000
WINDOWS: Final = 100  # per kind (no drift, shifted)
QUICK_WINDOWS: Final = 2
SIZES: Final = (10_000, 100_000)
QUICK_SIZES: Final = (200, 1_000)
JITTER: Final = 0.1  # kernel bandwidth of the smoothed bootstrap, in feature std
SHIFT_SIGMA: Final = 0.5
NULL_SEED: Final = 10_000  # window k of no drift is drawn with seed NULL_SEED + k
SHIFT_SEED: Final = 20_000
CROSS_WINDOWS: Final = 1_000  # no-drift windows the scipy cross-check judges against the bench's reference
CROSS_REFERENCES: Final = 10  # other references (seeds 1..), CROSS_WINDOWS // CROSS_REFERENCES windows each
CROSS_CHUNK: Final = 50
MIN_ROWS: Final = MonitorConfig().min_rows
LOG_MAX_BYTES: Final = 10 << 20  # the server's rotation size (ServeSettings.log_max_bytes default)
ROW_BYTES: Final = 1_000  # a one-row record's line is ~900 bytes: enough backups that rotation drops nothing
TARGETS: Final = {"judge_s": 30.0, "false_alarm_rate": 0.05, "detection_rate": 0.95}
_EVIDENTLY_IMPORT: Final = (
    "import time; t = time.perf_counter(); from evidently import DataDefinition, Dataset, Report; "
    "from evidently.presets import DataDriftPreset; print(time.perf_counter() - t)"
)


@dataclass(frozen=True)
class Source:
    """The one distribution every row is drawn from (a Gaussian KDE of the dataset) and the model answering them."""

    features: tuple[str, ...]
    target: Target
    rows: np.ndarray  # float64 [n, F], the dataset's rows (the kernel centres)
    bandwidth: np.ndarray  # float64 [F], the kernel's std per feature
    model: Any  # fitted sklearn classifier (predict_proba)

    def draw(self, n: int, *, seed: int) -> np.ndarray:
        """Pure; `n` i.i.d. rows as float32 (as the server receives them)."""
        rng = np.random.default_rng(seed)
        centres = self.rows[rng.integers(0, len(self.rows), size=n)]
        rows: np.ndarray = (centres + rng.normal(size=centres.shape) * self.bandwidth).astype(np.float32)
        return rows

    def answer(self, x: np.ndarray) -> np.ndarray:
        """Pure; the model's probabilities [n, K] (float32, as an ONNX runtime returns them)."""
        return np.asarray(self.model.predict_proba(x), dtype=np.float32)


def make_source() -> Source:
    """Blocking (loads the dataset, fits the model: ~1 s); the bench's distribution and model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ref = load_reference(DataConfig(reference=DATASET))
    frame = ref.frame()
    x = frame.loc[:, list(ref.features)].to_numpy(dtype=np.float64)
    y = ref.target.encode(frame[ref.label])
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000)).fit(x, y)
    return Source(
        features=ref.features, target=ref.target, rows=x, bandwidth=JITTER * x.std(axis=0), model=model
    )


def make_reference(source: Source, *, rows: int, seed: int) -> DriftReference:
    """Pure; `rows` rows of the distribution and the model's answers, as a release records them."""
    x = source.draw(rows, seed=seed)
    return build_reference(
        features=source.features,
        x=x,
        outputs=source.answer(x),
        task=source.target.task,
        classes=source.target.classes,
    )


def judge_rows(source: Source, ref: DriftReference, *, x: np.ndarray) -> tuple[MonitorVerdict, float]:
    """Blocking (Evidently); the verdict on live rows `x` (the model answers them) and detect_drift's seconds."""
    started = time.perf_counter()
    run = detect_drift(
        features=ref.features,
        ref_x=ref.x,
        ref_pred=ref.predictions,
        cur_x=x,
        cur_pred=predicted_labels(source.answer(x), task=ref.task, classes=ref.classes),
        categorical_prediction=True,
        alpha=ALPHA,
    )
    seconds = time.perf_counter() - started
    verdict = monitor_verdict(rows=len(x), min_rows=MIN_ROWS, columns=run.columns, quality=None)
    return verdict, seconds


# -- 1. the judging path over logged rows ---------------------------------------------------------------


def write_logs(source: Source, *, path: Path, model_name: str, rows: int, seed: int) -> dict[str, Any]:
    """Blocking (writes files); `rows` one-row requests logged by `PredictionLog` as a server logs them."""
    x = source.draw(rows, seed=seed)
    raw = source.answer(x)
    meta = BundleMeta(
        model_name=model_name,
        model_version="1",
        features=list(source.features),
        task="binary",
        classes=list(source.target.classes),
        output="probabilities",
        onnx_sha256="0" * 64,
    )
    ids = random.Random(seed)
    log = PredictionLog(
        sink="file",
        path=path,
        sample_rate=1.0,
        max_record_bytes=int(ServeSettings.model_fields["log_max_record_bytes"].default),
        max_bytes=LOG_MAX_BYTES,
        backups=2 + rows * ROW_BYTES // LOG_MAX_BYTES,
        seed=seed,
    )
    started = time.perf_counter()
    log.start()
    try:
        for i in range(rows):
            if log.sampled():
                log.record(
                    request_id=str(uuid.UUID(int=ids.getrandbits(128), version=4)),
                    model_name=model_name,
                    model_version=meta.model_version,
                    inputs=x[i : i + 1],
                    outputs=postprocess(raw[i : i + 1], meta=meta).as_dict(),
                )
    finally:
        log.stop()
    files = sorted(path.parent.glob(f"{path.name}*"))
    return {
        "write_s": round(time.perf_counter() - started, 3),
        "files": len(files),
        "bytes": sum(f.stat().st_size for f in files),
    }


def time_judging(
    source: Source, ref: DriftReference, *, path: Path, model_name: str, since: float
) -> dict[str, Any]:
    """Blocking (reads the logs, Evidently, writes HTML); each part of the monitor's judging path, timed."""
    from slipway.serving.predlog_read import read_prediction_logs

    t0 = time.perf_counter()
    read = read_prediction_logs([path], since=since, model_name=model_name, n_features=len(ref.features))
    t1 = time.perf_counter()
    window = LiveWindow(  # what window_from_logs builds of the read, then what judge compares
        x=read.rows.astype(np.float32),
        outputs=output_matrix(read.outputs, task=ref.task, classes=ref.classes),
        request_ids=row_ids(read.request_ids),
        source=str(path),
    )
    cur_pred = predicted_labels(window.outputs, task=ref.task, classes=ref.classes)
    t2 = time.perf_counter()
    run = detect_drift(
        features=ref.features,
        ref_x=ref.x,
        ref_pred=ref.predictions,
        cur_x=window.x,
        cur_pred=cur_pred,
        categorical_prediction=True,
        alpha=ALPHA,
    )
    t3 = time.perf_counter()
    verdict = monitor_verdict(rows=window.rows, min_rows=MIN_ROWS, columns=run.columns, quality=None)
    t4 = time.perf_counter()
    html = path.parent / "report.html"
    run.save_html(str(html))
    t5 = time.perf_counter()
    parts = {
        "read_logs_s": t1 - t0,
        "build_window_s": t2 - t1,
        "detect_drift_s": t3 - t2,
        "monitor_verdict_s": t4 - t3,
        "save_html_s": t5 - t4,
    }
    return {
        "rows_read": window.rows,
        "files_read": read.counts.files,
        **{k: round(v, 4) for k, v in parts.items()},
        "total_s": round(t5 - t0, 3),
        "html_bytes": html.stat().st_size,
        "status": verdict.status,
        "drifted": [c.column for c in verdict.drifted],
    }


def time_run_monitor(
    source: Source, ref: DriftReference, *, path: Path, home: Path, model_name: str
) -> float:
    """Blocking; seconds of `run_monitor` end to end over the log at `path`: the reference from an in-memory
    registry, the window, the verdict, and every report file (HTML, summary, history, plot, textfile)."""
    from slipway.config import RegistryConfig
    from slipway.monitoring.run import run_monitor
    from slipway.registry.base import Registration
    from slipway.registry.fake import InMemoryRegistry
    from slipway.settings import Settings

    registry = InMemoryRegistry()
    info = registry.register(
        Registration(
            model_name=model_name,
            module=source.model,
            input_example=ref.x[:1],
            params={},
            metrics={},
            tags={},
            release_key="bench-monitor",
            documents={REFERENCE_DOC: to_bytes(ref)},
        )
    )
    registry.set_champion(model_name=model_name, version=info.version, tags={})
    cfg = PipelineConfig(
        registry=RegistryConfig(model_name=model_name),
        monitor=MonitorConfig(alpha=ALPHA, logs=[str(path)]),
        base_dir=home,
    )
    started = time.perf_counter()
    run_monitor(settings=Settings(home=home), cfg=cfg, registry=registry, target=source.target, since="1h")
    return round(time.perf_counter() - started, 3)


def evidently_import_s(*, runs: int) -> list[float]:
    """Blocking (fresh interpreters); seconds of the imports detect_drift makes, once per run."""
    out = []
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, "-c", _EVIDENTLY_IMPORT], capture_output=True, text=True, check=True, timeout=300
        )
        out.append(round(float(done.stdout.strip().splitlines()[-1]), 3))
    return out


def bench_timing(source: Source, ref: DriftReference, *, sizes: tuple[int, ...]) -> dict[str, Any]:
    """Blocking (seconds to a minute); per size: logs written, the judging path timed, run_monitor timed."""
    model_name = PipelineConfig().registry.model_name
    warm = judge_rows(source, ref, x=source.draw(WINDOW_ROWS, seed=7))[1]  # Evidently's lazy imports, once
    per: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="slipway-bench-monitor-") as scratch:  # ~90 MB at 100k rows
        for rows in sizes:
            folder = Path(scratch) / str(rows)
            path = folder / "predictions.jsonl"
            since = time.time() - 1.0
            logs = write_logs(source, path=path, model_name=model_name, rows=rows, seed=rows)
            judged = time_judging(source, ref, path=path, model_name=model_name, since=since)
            end_to_end = time_run_monitor(source, ref, path=path, home=folder / "home", model_name=model_name)
            per[str(rows)] = {"logs": logs, **judged, "run_monitor_s": end_to_end}
    return {"first_detect_drift_call_s": round(warm, 3), "per_rows": per}


# -- 2 and 3. false alarms and detection over seeded windows ---------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(source: Source, ref: DriftReference) -> None:
    _WORKER["source"], _WORKER["ref"] = source, ref


def same_tests(ref: DriftReference, *, x: np.ndarray, cur_pred: np.ndarray) -> list[str]:
    """Pure; the columns detect_drift flags, by the tests Evidently runs (scipy's two-sided ks_2samp per feature;
    chisquare of the window's label counts against the reference's proportions), at the same threshold."""
    from scipy.stats import chisquare, ks_2samp  # type: ignore[import-untyped]

    threshold = ALPHA / (len(ref.features) + 1)
    ref_x = ref.x.astype(np.float64)
    flagged = [
        f
        for j, f in enumerate(ref.features)
        if ks_2samp(ref_x[:, j], x[:, j].astype(np.float64)).pvalue < threshold
    ]
    keys = sorted(set(ref.predictions.tolist()) | set(cur_pred.tolist()))
    expected = [np.count_nonzero(ref.predictions == k) * len(cur_pred) / ref.rows for k in keys]
    observed = [np.count_nonzero(cur_pred == k) for k in keys]
    if chisquare(observed, expected).pvalue < threshold:
        flagged.append(prediction_column(ref.features))
    return flagged


def cross_check(job: tuple[int, int, int]) -> list[list[str]]:
    """Blocking (CPU, ~0.05 s per window); no-drift windows (seeds lo..hi-1, as judge_window draws them) against
    the reference of seed `ref_seed`, judged by `same_tests`: each window's flagged columns."""
    ref_seed, lo, hi = job
    source: Source = _WORKER["source"]
    refs: dict[int, DriftReference] = _WORKER.setdefault("refs", {0: _WORKER["ref"]})
    if ref_seed not in refs:
        refs[ref_seed] = make_reference(source, rows=_WORKER["ref"].rows, seed=ref_seed)
    ref = refs[ref_seed]
    out = []
    for seed in range(lo, hi):
        x = source.draw(WINDOW_ROWS, seed=NULL_SEED + seed)
        cur_pred = predicted_labels(source.answer(x), task=ref.task, classes=ref.classes)
        out.append(same_tests(ref, x=x, cur_pred=cur_pred))
    return out


def shifted_feature(k: int, *, features: int) -> tuple[int, float]:
    """Pure; window k's shifted feature and the shift's sign (each feature both ways over 60 windows)."""
    return k % features, 1.0 if k % (2 * features) < features else -1.0


def judge_window(job: tuple[str, int]) -> dict[str, Any]:
    """Blocking (Evidently); one seeded window, "null" (no drift) or "shift" (one feature shifted), judged."""
    kind, k = job
    source: Source = _WORKER["source"]
    ref: DriftReference = _WORKER["ref"]
    x = source.draw(WINDOW_ROWS, seed=(NULL_SEED if kind == "null" else SHIFT_SEED) + k)
    shifted = None
    if kind == "shift":
        j, sign = shifted_feature(k, features=len(ref.features))
        shifted = ref.features[j]
        x[:, j] += np.float32(sign * SHIFT_SIGMA * float(ref.x[:, j].astype(np.float64).std()))
    verdict, seconds = judge_rows(source, ref, x=x)
    drifted = [c.column for c in verdict.drifted]
    return {
        "kind": kind,
        "k": k,
        "status": verdict.status,
        "drifted": drifted,
        "shifted": shifted,
        "caught": verdict.status == "drift" and shifted in drifted,
        "detect_drift_s": seconds,
    }


def judge_windows(
    source: Source,
    ref: DriftReference,
    *,
    jobs: list[tuple[str, int]],
    cross: list[tuple[int, int, int]],
    workers: int,
) -> tuple[list[dict[str, Any]], list[list[list[str]]]]:
    """Blocking (~2-5 s per window per core, ~0.05 s per cross-check window); every job judged, in `workers`
    processes (spawned: no fork of a process with threads), in job order."""
    if workers <= 1:
        _init_worker(source, ref)
        return [judge_window(job) for job in jobs], [cross_check(job) for job in cross]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=context, initializer=_init_worker, initargs=(source, ref)
    ) as pool:
        return list(pool.map(judge_window, jobs)), list(pool.map(cross_check, cross))


def cross_jobs(*, windows: int, references: int) -> list[tuple[int, int, int]]:
    """Pure; (reference seed, first, last + 1 window) chunks: `windows` against reference 0 (the bench's own,
    its first windows the same as the detect_drift ones), then windows // references against each of the next
    `references` references."""
    jobs = [(0, lo, min(lo + CROSS_CHUNK, windows)) for lo in range(0, windows, CROSS_CHUNK)]
    each = windows // references
    return jobs + [
        (r, lo, min(lo + CROSS_CHUNK, each))
        for r in range(1, references + 1)
        for lo in range(0, each, CROSS_CHUNK)
    ]


def cross_summary(
    jobs: list[tuple[int, int, int]], flagged: list[list[list[str]]], *, judged: list[dict[str, Any]]
) -> dict[str, Any]:
    """Pure; false-alarm rates by the same tests over many more windows, and whether they flag exactly what
    detect_drift flagged on the no-drift windows both judged."""
    own = [f for (r, _, _), chunk in zip(jobs, flagged, strict=True) if r == 0 for f in chunk]
    others = [f for (r, _, _), chunk in zip(jobs, flagged, strict=True) if r != 0 for f in chunk]
    null = [r for r in judged if r["kind"] == "null"]
    both = min(len(null), len(own))
    agree = sum(1 for r in null[:both] if sorted(r["drifted"]) == sorted(own[r["k"]]))
    own_alarms = sum(1 for f in own if f)
    other_alarms = sum(1 for f in others if f)
    return {
        "tests": "scipy.stats.ks_2samp per feature and scipy.stats.chisquare of the predicted labels, at the "
        "threshold detect_drift uses: what Evidently computes, without its report",
        "agreement_with_detect_drift": {"windows": both, "same_columns_flagged": agree},
        "bench_reference": {
            "windows": len(own),
            "alarms": own_alarms,
            "rate": own_alarms / len(own) if own else 0.0,
            "ci95": wilson(own_alarms, len(own)),
        },
        "other_references": {
            "references": len({r for r, _, _ in jobs if r != 0}),
            "windows": len(others),
            "alarms": other_alarms,
            "rate": other_alarms / len(others) if others else 0.0,
            "ci95": wilson(other_alarms, len(others)),
        },
    }


def wilson(hits: int, n: int, *, z: float = 1.96) -> list[float]:
    """Pure; the 95% Wilson score interval [low, high] of a rate hits/n (a list: what JSON reads back)."""
    if n == 0:
        return [0.0, 1.0]
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]


def rates(results: list[dict[str, Any]], *, features: tuple[str, ...]) -> dict[str, Any]:
    """Pure; false-alarm and detection rates (with Wilson intervals) and what was flagged, from judged windows."""
    null = [r for r in results if r["kind"] == "null"]
    shift = [r for r in results if r["kind"] == "shift"]
    alarms = [r for r in null if r["status"] != "ok"]
    caught = [r for r in shift if r["caught"]]
    per_feature = {f: {"windows": 0, "caught": 0} for f in features}
    for r in shift:
        per_feature[r["shifted"]]["windows"] += 1
        per_feature[r["shifted"]]["caught"] += int(r["caught"])
    others = [c for r in shift for c in r["drifted"] if c != r["shifted"]]
    seconds = sorted(r["detect_drift_s"] for r in results)
    return {
        "false_alarm": {
            "windows": len(null),
            "alarms": len(alarms),
            "rate": len(alarms) / len(null) if null else 0.0,
            "ci95": wilson(len(alarms), len(null)),
            "alarmed_columns": sorted({c for r in alarms for c in r["drifted"]}),
        },
        "detection": {
            "windows": len(shift),
            "caught": len(caught),
            "rate": len(caught) / len(shift) if shift else 0.0,
            "ci95": wilson(len(caught), len(shift)),
            "missed": [
                {"k": r["k"], "shifted": r["shifted"], "drifted": r["drifted"]}
                for r in shift
                if not r["caught"]
            ],
            "per_feature": per_feature,
            "other_columns_flagged": len(others),
            "prediction_flagged_windows": sum(
                1 for r in shift if any(c not in features for c in r["drifted"])
            ),
        },
        "detect_drift_s_per_window": {
            "p50": round(seconds[len(seconds) // 2], 3) if seconds else None,
            "max": round(seconds[-1], 3) if seconds else None,
        },
    }


# -- the document ------------------------------------------------------------------------------------------


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def machine_facts() -> dict[str, Any]:
    """Blocking (reads /proc); CPU, cores, load and the versions the monitor's speed depends on."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    model = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), None)
    return {
        "cpu": model or platform.processor() or platform.machine(),
        "cores": _cores(),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "evidently": version("evidently"),
        "scikit-learn": version("scikit-learn"),
        "pandas": version("pandas"),
        "numpy": version("numpy"),
    }


def run(out_dir: Path, *, quick: bool = False, workers: int | None = None) -> dict[str, Any]:
    """Blocking (minutes; quick: under a minute); writes monitor.json and monitor.md, returns the JSON."""
    started = time.perf_counter()
    machine = machine_facts()
    source = make_source()
    ref = make_reference(source, rows=1_000 if quick else REFERENCE_ROWS, seed=0)
    imports = evidently_import_s(runs=1 if quick else 2)
    sizes = QUICK_SIZES if quick else SIZES
    timing = bench_timing(source, ref, sizes=sizes)
    n = QUICK_WINDOWS if quick else WINDOWS
    jobs = [("null", k) for k in range(n)] + [("shift", k) for k in range(n)]
    procs = workers if workers is not None else (1 if quick else _cores())
    cross = cross_jobs(windows=20 if quick else CROSS_WINDOWS, references=2 if quick else CROSS_REFERENCES)
    results, flagged = judge_windows(source, ref, jobs=jobs, cross=cross, workers=procs)
    judged = rates(results, features=ref.features)
    checked = cross_summary(cross, flagged, judged=results)
    largest = timing["per_rows"][str(max(sizes))]
    doc: dict[str, Any] = {
        "judge_total_s": {size: timing["per_rows"][size]["total_s"] for size in timing["per_rows"]},
        "false_alarm_rate": judged["false_alarm"]["rate"],
        "detection_rate": judged["detection"]["rate"],
        "evidently_import_s": imports,
        "targets": {
            "judge_s": {
                "rows": max(sizes),
                "target": f"judging path (read + window + detect_drift + verdict + HTML) over {max(sizes)} rows "
                f"< {TARGETS['judge_s']:g} s (warm process; Evidently's import is evidently_import_s)",
                "value": largest["total_s"],
                "met": largest["total_s"] < TARGETS["judge_s"],
            },
            "false_alarm_rate": {
                "target": f"<= {TARGETS['false_alarm_rate']:.0%}",
                "value": judged["false_alarm"]["rate"],
                "met": judged["false_alarm"]["rate"] <= TARGETS["false_alarm_rate"],
            },
            "detection_rate": {
                "target": f">= {TARGETS['detection_rate']:.0%}",
                "value": judged["detection"]["rate"],
                "met": judged["detection"]["rate"] >= TARGETS["detection_rate"],
            },
        },
        "timing": timing,
        "windows": judged,
        "false_alarm_cross_check": checked,
        "method": {
            "distribution": f"smoothed bootstrap of {DATASET} ({len(source.rows)} rows, {len(source.features)} "
            f"features): a row drawn with replacement plus N(0, ({JITTER:g} x feature std)^2) noise per feature, "
            "i.e. i.i.d. draws from one Gaussian kernel density estimate; float32 as the server receives rows",
            "model": "StandardScaler + LogisticRegression(max_iter=1000) fitted on all rows; predictions are "
            "its argmax class labels (predict_proba), as the server answers",
            "reference": f"{ref.rows} rows of the distribution (seed 0) with the model's answers, via build_reference",
            "logs": "one-row requests written by PredictionLog (file sink, sample rate 1, rotation every "
            f"{LOG_MAX_BYTES >> 20} MiB with enough backups to keep every row), answers by serving's postprocess",
            "no_drift_windows": f"{n} windows of {WINDOW_ROWS} rows from the same distribution (seeds 10000+k)",
            "shift_windows": f"{n} windows of {WINDOW_ROWS} rows (seeds 20000+k), feature k mod "
            f"{len(source.features)} shifted by {SHIFT_SIGMA:g} x its reference std, + for k mod "
            f"{2 * len(source.features)} < {len(source.features)}, - otherwise; the model answers the shifted rows",
            "alarm": f"monitor_verdict status != 'ok' at alpha {ALPHA:g} (each of the {len(source.features) + 1} "
            "columns tested at alpha / columns); caught: status 'drift' naming the shifted feature",
            "workers": procs,
        },
        "machine": machine,
        "quick": quick,
        "bench_s": round(time.perf_counter() - started, 1),
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "monitor.json").write_text(json.dumps(doc, indent=2) + "\n")
    (out_dir / "monitor.md").write_text(render_markdown(doc))
    return doc


def render_markdown(doc: dict[str, Any]) -> str:
    """Pure; the headline against the targets and a table of the judging path's parts per size."""
    t, w, m, c = doc["targets"], doc["windows"], doc["machine"], doc["false_alarm_cross_check"]

    def met(key: str) -> str:
        return "met" if t[key]["met"] else "**missed**"

    lines = [
        "# Monitor: time to judge logged traffic, false alarms, detection",
        "",
        f"* machine: {m['cpu']}, {m['cores']} usable cores, load {m['load_average_1m']}; evidently {m['evidently']}",
        f"* judging path over {t['judge_s']['rows']:,} rows: {t['judge_s']['value']} s "
        f"(target < {TARGETS['judge_s']:g} s: {met('judge_s')}); Evidently import in a fresh "
        f"process: {', '.join(f'{s} s' for s in doc['evidently_import_s'])}",
        f"* false alarms: {w['false_alarm']['alarms']}/{w['false_alarm']['windows']} no-drift windows "
        f"({w['false_alarm']['rate']:.1%}, 95% CI {w['false_alarm']['ci95'][0]:.1%}-{w['false_alarm']['ci95'][1]:.1%}; "
        f"target <= {TARGETS['false_alarm_rate']:.0%}: {met('false_alarm_rate')})",
        f"* detection of a {SHIFT_SIGMA:g}-sigma shift on one feature: {w['detection']['caught']}/"
        f"{w['detection']['windows']} ({w['detection']['rate']:.1%}, 95% CI {w['detection']['ci95'][0]:.1%}-"
        f"{w['detection']['ci95'][1]:.1%}; target >= {TARGETS['detection_rate']:.0%}: {met('detection_rate')})",
        f"* the same tests without Evidently's report (scipy; agree with detect_drift on "
        f"{c['agreement_with_detect_drift']['same_columns_flagged']}/{c['agreement_with_detect_drift']['windows']} "
        f"no-drift windows): false alarms {c['bench_reference']['alarms']}/{c['bench_reference']['windows']} "
        f"({c['bench_reference']['rate']:.1%}) against this reference, {c['other_references']['alarms']}/"
        f"{c['other_references']['windows']} ({c['other_references']['rate']:.1%}) against "
        f"{c['other_references']['references']} other references",
        f"* detect_drift per {WINDOW_ROWS}-row window: p50 {w['detect_drift_s_per_window']['p50']} s, "
        f"max {w['detect_drift_s_per_window']['max']} s",
        "",
        "| rows | log files | read logs s | build window s | detect_drift s | verdict s | save HTML s "
        "| total s | run_monitor s | status |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for rows, r in doc["timing"]["per_rows"].items():
        lines.append(
            f"| {int(rows):,} | {r['files_read']} | {r['read_logs_s']:.3g} | {r['build_window_s']:.3g} "
            f"| {r['detect_drift_s']:.3g} | {r['monitor_verdict_s']:.2g} | {r['save_html_s']:.3g} "
            f"| {r['total_s']:.3g} | {r['run_monitor_s']:.3g} | {r['status']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Blocking; `python -m slipway.bench.monitor [--quick] [--out DIR]` (what `make bench` runs)."""
    from slipway.bench.cli import simple_main

    simple_main(
        "monitor",
        description="The monitor's judging time over logged rows, false alarms and detection.",
        quick_help="tiny logs and two windows per kind: checks the plumbing, not speed or rates",
    )


if __name__ == "__main__":
    main()
