"""Read prediction records back (`slipway.serving.predlog`): a file sink's JSONL and its rotated siblings,
or a saved pod stdout (`kubectl logs`), into one row matrix with what the monitor counts.

Every line is accounted for: a record, or a skip counted by cause (another program's output, an invalid
or torn line, a truncated record, another model, before `since`, rows of another width). Records come
back in time order (processes sharing a file rotate it in turn, so files are not strictly in age order).
"""

from __future__ import annotations

import gc
import json
import re
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import numpy as np

from slipway.serving.predlog import EVENT

_ROTATED = re.compile(r"\.(\d+)$")


@dataclass
class ReadCounts:
    """What the reader did with each line, and with each record's rows."""

    files: int = 0  # files read (the paths given and their rotated siblings that exist)
    read: int = 0  # records returned
    rows: int = 0  # rows returned (a record carries one request's rows)
    skipped_not_prediction: int = 0  # lines that are not prediction records (a pod's other output)
    skipped_invalid: int = 0  # prediction lines that are not valid JSON, or records missing a field
    skipped_torn: int = 0  # a file's unterminated, unparsable last line (being written)
    skipped_truncated: int = 0  # records logged without inputs (their request passed the size cap)
    skipped_other_model: int = 0
    skipped_before_since: int = 0
    schema_mismatch: int = 0  # records whose rows have another width than `n_features`
    widths: dict[int, int] = field(default_factory=dict)  # row width -> records with it (all read records)


@dataclass(frozen=True)
class LogRead:
    """Prediction records as rows: `rows[i]` was answered at `ts[i]` by `model_versions[i]` with `outputs[i]`."""

    rows: np.ndarray  # float64 [n, n_features]; null (non-finite) inputs are NaN
    ts: np.ndarray  # float64 [n], seconds since the epoch
    request_ids: list[str]
    model_versions: list[str]
    outputs: list[Any]  # the row's item of the record's outputs["predictions"] (None when absent)
    n_features: int | None  # the width of `rows` (None when nothing was read)
    counts: ReadCounts


@dataclass(frozen=True)
class _Record:
    ts: float
    request_id: str
    model_version: str
    inputs: list[list[Any]]
    predictions: list[Any]


def log_files(path: Path) -> list[Path]:
    """Blocking (lists a folder); `path`'s rotated siblings oldest first (path.N .. path.1), then `path`, those that exist."""
    rotated: list[tuple[int, Path]] = []
    if path.parent.is_dir():
        for sibling in path.parent.glob(f"{_glob_escape(path.name)}.*"):
            match = _ROTATED.search(sibling.name)
            if match and sibling.name == f"{path.name}.{match.group(1)}" and sibling.is_file():
                rotated.append((int(match.group(1)), sibling))
    files = [p for _, p in sorted(rotated, reverse=True)]
    return [*files, path] if path.is_file() else files


def _glob_escape(name: str) -> str:
    """Pure; `name` with glob metacharacters bracketed."""
    return re.sub(r"([*?\[])", r"[\1]", name)


def read_prediction_logs(
    paths: list[Path],
    *,
    since: float | None = None,
    model_name: str | None = None,
    n_features: int | None = None,
) -> LogRead:
    """Blocking (reads every file); the prediction records in `paths` (each with its rotated siblings),
    at or after `since` (epoch seconds) and of `model_name` when given, in time order.

    Rows must all have `n_features` values (when None: the width most records have); records of another
    width are not returned but counted in `counts.schema_mismatch` (`counts.widths` says which widths).
    """
    counts = ReadCounts()
    records: list[_Record] = []
    seen: set[Path] = set()
    with _no_gc():  # a parse allocates millions of objects and frees none: cycle collection only costs time
        for given in paths:
            for path in log_files(given):
                if path.resolve() in seen:
                    continue
                seen.add(path.resolve())
                counts.files += 1
                _read_file(path, records, counts, since=since, model_name=model_name)
    widths = Counter(len(r.inputs[0]) for r in records)
    counts.widths = dict(widths)
    width = n_features if n_features is not None else _majority(widths)
    kept = [r for r in records if len(r.inputs[0]) == width]
    counts.schema_mismatch = len(records) - len(kept)
    kept.sort(key=lambda r: r.ts)
    return _as_rows(kept, width=width, counts=counts)


@contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _majority(widths: Counter[int]) -> int | None:
    if not widths:
        return None
    return max(widths.items(), key=lambda item: (item[1], item[0]))[0]


def _read_file(
    path: Path, records: list[_Record], counts: ReadCounts, *, since: float | None, model_name: str | None
) -> None:
    with path.open(encoding="utf-8", errors="replace") as fh:
        for line in fh:
            if EVENT not in line:
                counts.skipped_not_prediction += 1
                continue
            start = line.find("{")
            try:
                doc = json.loads(line[start:]) if start >= 0 else None
            except ValueError:
                doc = None
            if doc is None:
                if line.endswith("\n"):
                    counts.skipped_invalid += 1
                else:
                    counts.skipped_torn += 1  # only a file's last line can lack its newline
                continue
            _take(doc, records, counts, since=since, model_name=model_name)


def _take(
    doc: Any, records: list[_Record], counts: ReadCounts, *, since: float | None, model_name: str | None
) -> None:
    if not isinstance(doc, dict) or doc.get("event") != EVENT:
        counts.skipped_not_prediction += 1
        return
    if model_name is not None and doc.get("model_name") != model_name:
        counts.skipped_other_model += 1
        return
    ts = doc.get("ts")
    if not isinstance(ts, int | float):
        counts.skipped_invalid += 1
        return
    if since is not None and ts < since:
        counts.skipped_before_since += 1
        return
    if doc.get("truncated"):
        counts.skipped_truncated += 1
        return
    inputs = doc.get("inputs")
    if not _is_matrix(inputs) or not isinstance(doc.get("request_id"), str):
        counts.skipped_invalid += 1
        return
    outputs = doc.get("outputs")
    predictions = outputs.get("predictions") if isinstance(outputs, dict) else None
    if not isinstance(predictions, list) or len(predictions) != len(inputs):
        predictions = [None] * len(inputs)
    records.append(
        _Record(
            ts=float(ts),
            request_id=doc["request_id"],
            model_version=str(doc.get("model_version", "")),
            inputs=inputs,
            predictions=predictions,
        )
    )


def _is_matrix(inputs: Any) -> TypeGuard[list[list[Any]]]:
    """Pure; a non-empty list of equally long non-empty lists (their values are checked by numpy, in bulk)."""
    if not isinstance(inputs, list) or not inputs or not all(isinstance(row, list) for row in inputs):
        return False
    width = len(inputs[0])
    return width > 0 and all(len(row) == width for row in inputs)


def _numeric(records: list[_Record], counts: ReadCounts) -> tuple[list[_Record], np.ndarray | None]:
    """Blocking (CPU); the records' rows as one float64 matrix (null -> NaN); records holding a value that is
    not a number are dropped and counted invalid (checked one by one only when the bulk conversion fails)."""
    flat = [row for r in records for row in r.inputs]
    try:
        return records, np.array(flat, dtype=np.float64) if flat else None
    except (TypeError, ValueError):
        pass
    good = []
    for r in records:
        try:
            np.array(r.inputs, dtype=np.float64)
        except (TypeError, ValueError):
            counts.skipped_invalid += 1
            continue
        good.append(r)
    return good, np.array([row for r in good for row in r.inputs], dtype=np.float64) if good else None


def _as_rows(records: list[_Record], *, width: int | None, counts: ReadCounts) -> LogRead:
    records, matrix = _numeric(records, counts)
    rows = matrix if matrix is not None else np.zeros((0, width or 0), dtype=np.float64)
    lengths = [len(r.inputs) for r in records]
    counts.read, counts.rows = len(records), len(rows)
    return LogRead(
        rows=rows,
        ts=np.repeat(np.array([r.ts for r in records], dtype=np.float64), lengths),
        request_ids=[r.request_id for r, n in zip(records, lengths, strict=True) for _ in range(n)],
        model_versions=[r.model_version for r, n in zip(records, lengths, strict=True) for _ in range(n)],
        outputs=[p for r in records for p in r.predictions],
        n_features=width,
        counts=counts,
    )
