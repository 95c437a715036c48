"""The live window from prediction logs: the local server's JSONL (and its rotated files) or what a log
pipeline collected from pods' stdout (`monitor.logs`)."""

from __future__ import annotations

import glob
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from slipway.config import PipelineConfig
from slipway.errors import MonitorError
from slipway.evaluation.target import Target
from slipway.monitoring.window import LiveWindow
from slipway.serving.predlog_read import ReadCounts, read_prediction_logs


def log_paths(cfg: PipelineConfig) -> list[Path]:
    """Blocking (expands globs); `monitor.logs` (files or globs, relative to the config file), else the local
    server's prediction log. Paths that do not exist yet are kept (their rotated siblings may)."""
    if not cfg.monitor.logs:
        return [cfg.prediction_log_path()]
    out: list[Path] = []
    for item in cfg.monitor.logs:
        pattern = str(cfg.resolve(Path(item)))
        matches = sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]
        out.extend(Path(m) for m in matches)
    return out


def output_matrix(outputs: list[Any], *, task: str, classes: tuple[str, ...]) -> np.ndarray:
    """Pure; logged answers as probabilities [n, K] in `classes` order (classification) or values [n];
    NaN where a row has no finite answer."""
    if task == "regression":
        values = [o.get("value") if isinstance(o, dict) else None for o in outputs]
        return np.array([np.nan if v is None else float(v) for v in values], dtype=np.float64)
    out = np.full((len(outputs), len(classes)), np.nan, dtype=np.float64)
    for i, o in enumerate(outputs):
        probs = o.get("probabilities") if isinstance(o, dict) else None
        if isinstance(probs, dict):
            out[i] = [np.nan if probs.get(c) is None else float(probs[c]) for c in classes]
    return out


def row_ids(request_ids: list[str]) -> tuple[str, ...]:
    """Pure; one id per row: the request id, and `<id>#<k>` for the k-th (k >= 1) row of a multi-row request
    (a labels file names rows the same way)."""
    seen: Counter[str] = Counter()
    out = []
    for rid in request_ids:
        k = seen[rid]
        seen[rid] += 1
        out.append(rid if k == 0 else f"{rid}#{k}")
    return tuple(out)


def _notes(counts: ReadCounts) -> tuple[str, ...]:
    skipped = {
        "torn last lines": counts.skipped_torn,
        "invalid lines": counts.skipped_invalid,
        "records logged without inputs (over the size cap)": counts.skipped_truncated,
        "records of other models": counts.skipped_other_model,
        "non-prediction lines": counts.skipped_not_prediction,
    }
    return tuple(f"skipped {n} {what}" for what, n in skipped.items() if n)


def window_from_logs(
    cfg: PipelineConfig,
    *,
    model_name: str,
    version: str,
    features: tuple[str, ...],
    target: Target,
    since: float,
) -> LiveWindow:
    """Blocking (reads the logs); the rows the champion (`version` of `model_name`) answered since `since`
    (rows other versions answered, e.g. a canary's, are counted in the notes, not judged). MonitorError when
    there is no log at all, or when logged rows do not have the champion's width (a schema that no longer matches)."""
    paths = log_paths(cfg)
    read = read_prediction_logs(paths, since=since, model_name=model_name, n_features=len(features))
    where = ", ".join(str(p) for p in paths) or "(no paths)"
    if read.counts.files == 0:
        raise MonitorError(
            f"no prediction logs at {where}: turn serving.prediction_log on (sink file or stdout) and collect "
            "them, list them in monitor.logs, or pass --data FILE"
        )
    if read.counts.schema_mismatch:
        widths = {w: n for w, n in read.counts.widths.items() if w != len(features)}
        raise MonitorError(
            f"{where}: {read.counts.schema_mismatch} logged record(s) have rows of width(s) {sorted(widths)}, the "
            f"champion reads {len(features)} features: the window mixes schemas; shorten --since past the change"
        )
    mine = np.array([v == version for v in read.model_versions], dtype=bool)
    others = Counter(v for v in read.model_versions if v != version)
    notes = _notes(read.counts)
    if others:
        said = ", ".join(f"v{v}: {n}" for v, n in sorted(others.items()))
        notes += (f"skipped {sum(others.values())} rows other versions answered ({said})",)
    classes = tuple(str(c) for c in target.classes)
    keep = np.flatnonzero(mine)
    return LiveWindow(
        x=read.rows[keep].astype(np.float32),
        outputs=output_matrix([read.outputs[i] for i in keep], task=target.task, classes=classes),
        request_ids=row_ids([read.request_ids[i] for i in keep]),
        source=f"{read.counts.files} log file(s) at {where}",
        notes=notes,
        versions={version: len(keep)} if len(keep) else {},
    )
