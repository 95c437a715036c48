"""The servability check (TFX's InfraValidator): start the real server on a bundle, ask it, compare.

Starts a server on a free port (by default `python -m slipway.serving` on the bundle; or the release's
container image, see `ServerLaunch`), waits for /readyz, sends holdout rows in small requests and
compares the returned probabilities with the offline ONNX Runtime ones. A mismatch, a crash or a
timeout fails the check with a cause; the server is always stopped and its leftovers removed.
"""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
from pydantic import BaseModel, Field

from slipway.errors import UsageError
from slipway.ports import free_port
from slipway.readiness import stop_popen, wait_http_ok
from slipway.serving.answers import answer_columns
from slipway.serving.bundle import BundleMeta, read_bundle
from slipway.serving.model import answers, load_runtime

REQUEST_ROWS = 32
STDERR_LINES = 15


class ServabilityReport(BaseModel):
    """What the check saw; `passed=False` always comes with a `cause`."""

    passed: bool
    cause: str | None = Field(
        default=None, description="Why it failed: mismatch, crash, timeout, HTTP error."
    )
    served_by: str = Field(
        default="process",
        description="What answered: `process` (python -m slipway.serving) or `image <ref>`.",
    )
    model_name: str | None = None
    model_version: str | None = None
    rows: int = Field(default=0, description="Holdout rows the server answered.")
    max_abs_diff: float | None = Field(
        default=None,
        description="Largest |served - offline| answer (probability; for values relative to max(|value|, 1)).",
    )
    label_mismatches: int = 0
    ready_s: float | None = Field(default=None, description="Seconds from start to /readyz 200.")
    p50_latency_ms: float | None = Field(default=None, description="Median /predict round trip.")
    exit_code: int | None = Field(
        default=None, description="The server's exit code once stopped (0: graceful)."
    )
    stderr_tail: list[str] = Field(default_factory=list)

    def summary(self) -> str:
        """Pure; one line for logs and release reasons."""
        if not self.passed:
            return f"servability FAILED: {self.cause}"
        return (
            f"servability passed ({self.served_by}): {self.rows} rows, max |diff| {self.max_abs_diff:.3g}, "
            f"ready in {self.ready_s:.2f} s, p50 {self.p50_latency_ms:.2f} ms, graceful exit"
        )


@dataclass(frozen=True)
class ServerLaunch:
    """How to start one server for the check: a foreground command, and the command that removes its leftovers."""

    command: tuple[str, ...]
    served_by: str = "process"
    env: dict[str, str] = field(default_factory=dict)
    cleanup: tuple[str, ...] = ()


Launcher = Callable[[Path, int], ServerLaunch]
"""(bundle dir, port) -> how to start a server answering on 127.0.0.1:port."""


def process_launcher(python: str = sys.executable) -> Launcher:
    """Pure; the default launcher: `python -m slipway.serving` on the bundle (the orchestrator's environment)."""

    def launch(bundle_dir: Path, port: int) -> ServerLaunch:
        cmd = (
            python,
            "-m",
            "slipway.serving",
            "--model",
            str(bundle_dir),
            "--port",
            str(port),
            "--host",
            "127.0.0.1",
        )
        return ServerLaunch(command=cmd)

    return launch


def expected_answers(bundle_dir: Path, x: np.ndarray) -> np.ndarray:
    """Blocking; what the bundle's model answers offline for x under ONNX Runtime: probabilities [N, K]
    (the softmax the server applies to logits) or values [N]."""
    bundle = read_bundle(bundle_dir)
    runtime = load_runtime(bundle, threads=1)
    return answers(bundle.meta, runtime.run(np.ascontiguousarray(x, dtype=np.float32)))


def _tail(log: IO[bytes]) -> list[str]:
    log.flush()
    log.seek(0)
    lines: deque[str] = deque(maxlen=STDERR_LINES)
    for raw in log:
        line = raw.decode(errors="replace").rstrip()
        if line:
            lines.append(line)
    return list(lines)


def _exited(proc: subprocess.Popen[bytes]) -> str | None:
    code = proc.poll()
    return None if code is None else f"server exited with code {code} before it was ready"


def _cleanup(launch: ServerLaunch) -> None:
    if launch.cleanup:  # e.g. `podman rm -f NAME`: nothing better to do on failure while stopping
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            subprocess.run(list(launch.cleanup), capture_output=True, timeout=60, check=False)


def served_matrix(
    doc: dict[str, Any], *, meta: BundleMeta, rows: int
) -> tuple[np.ndarray | None, str | None]:
    """Pure; the answer's probabilities [rows, K] in class order, or values [rows]; or why it cannot be read."""
    columns = answer_columns(doc)
    if meta.task == "regression":
        values = columns.values
        if values is None or len(values) != rows:
            return None, f"expected {rows} predictions with a `value` in the answer"
        if any(v is None for v in values):
            return None, "the server returned non-finite values (null)"
        if not all(_finite_number(v) for v in values):
            return None, "every `value` must be a finite number"
        return np.asarray(values, dtype=np.float64), None
    probs = columns.probabilities
    if probs is None or len(probs) != rows:
        return None, f"expected {rows} predictions with `probabilities` in the answer"
    names = [str(c) for c in meta.classes]
    matrix = []
    for row in probs:
        if not isinstance(row, dict) or list(row) != names:
            return None, f"probabilities must be keyed by the classes {names} in that order"
        if any(v is None for v in row.values()):
            return None, "the server returned non-finite probabilities (null)"
        if not all(_finite_number(v) for v in row.values()):
            return None, "every probability must be a finite number"
        matrix.append([float(v) for v in row.values()])
    return np.asarray(matrix, dtype=np.float64), None


def _finite_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _compare(
    client: Any, x: np.ndarray, expected: np.ndarray, *, meta: BundleMeta, atol: float
) -> tuple[dict[str, Any], str | None]:
    import httpx

    facts: dict[str, Any] = {"rows": 0, "max_abs_diff": 0.0, "label_mismatches": 0, "latencies": []}
    classification = meta.task != "regression"
    want_labels = [meta.classes[int(k)] for k in expected.argmax(axis=1)] if classification else []
    for start in range(0, len(x), REQUEST_ROWS):
        stop = min(start + REQUEST_ROWS, len(x))
        where = f"rows {start}-{stop - 1}"
        t0 = time.perf_counter()
        try:
            resp = client.post("/predict", json={"instances": x[start:stop].tolist()})
        except httpx.TimeoutException:
            return facts, f"{where}: /predict timed out"
        except httpx.HTTPError as exc:
            return facts, f"{where}: /predict failed: {type(exc).__name__}: {exc}"
        facts["latencies"].append(time.perf_counter() - t0)
        if resp.status_code != 200:
            return facts, f"{where}: /predict answered HTTP {resp.status_code}: {resp.text[:200]}"
        doc = resp.json()
        if doc.get("model_version") != meta.model_version:
            return (
                facts,
                f"{where}: served model_version {doc.get('model_version')!r}, the bundle is {meta.model_version!r}",
            )
        served, problem = served_matrix(doc, meta=meta, rows=stop - start)
        if served is None:
            return facts, f"{where}: {problem}"
        if served.shape != expected[start:stop].shape:
            return facts, f"{where}: answer shape {served.shape}, offline {expected[start:stop].shape}"
        scale = np.maximum(np.abs(expected[start:stop]), 1.0) if not classification else 1.0
        diff = float((np.abs(served - expected[start:stop]) / scale).max())
        facts["max_abs_diff"] = max(facts["max_abs_diff"], diff)
        if classification:
            got = answer_columns(doc).labels or []
            if len(got) != stop - start:
                return facts, f"{where}: expected {stop - start} labels in the answer, got {len(got)}"
            facts["label_mismatches"] += sum(
                1 for a, b in zip(got, want_labels[start:stop], strict=True) if a != b
            )
        facts["rows"] = stop
    if facts["max_abs_diff"] > atol or facts["label_mismatches"]:
        return facts, (
            f"served answers differ from offline ONNX Runtime: max |diff| {facts['max_abs_diff']:.3g} "
            f"(atol {atol:g}), {facts['label_mismatches']} of {len(x)} labels differ"
        )
    return facts, None


def check_servability(
    bundle_dir: Path,
    *,
    x: np.ndarray,
    expected: np.ndarray,
    timeout_s: float = 60,
    atol: float = 1e-5,
    env: dict[str, str] | None = None,
    launcher: Launcher | None = None,
) -> ServabilityReport:
    """Blocking (seconds); serves the bundle (by `launcher`, default in-process) and compares it with `expected`; never raises for a failing server."""
    import httpx

    try:
        meta = read_bundle(bundle_dir).meta
    except UsageError as exc:
        return ServabilityReport(passed=False, cause=f"bad bundle: {exc}")
    port = free_port()
    launch = (launcher or process_launcher())(bundle_dir, port)
    report: dict[str, Any] = {
        "model_name": meta.model_name,
        "model_version": meta.model_version,
        "served_by": launch.served_by,
    }
    with tempfile.TemporaryFile() as log:
        try:
            proc = subprocess.Popen(
                list(launch.command),
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **launch.env, **(env or {})},
                start_new_session=True,
            )
        except OSError as exc:
            return ServabilityReport(passed=False, cause=f"cannot start {launch.served_by}: {exc}", **report)
        cause: str | None = None
        server_log: list[str] = []
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=timeout_s) as client:
                report["ready_s"], why = wait_http_ok(
                    client, "/readyz", exited=lambda: _exited(proc), timeout_s=timeout_s
                )
                cause = why or None
                if cause is not None:
                    server_log = _tail(log)  # before stopping: why it never got ready
                else:
                    facts, cause = _compare(client, x, expected, meta=meta, atol=atol)
                    lat = facts.pop("latencies")
                    report |= facts | {"p50_latency_ms": float(np.median(lat)) * 1000 if lat else None}
        finally:
            report["exit_code"] = stop_popen(proc)
            report["stderr_tail"] = _tail(log)
            _cleanup(launch)
    if cause is None and report["exit_code"] != 0:
        cause = f"server exited with code {report['exit_code']} on SIGTERM (expected a graceful 0)"
        server_log = report["stderr_tail"]
    if server_log:
        cause = f"{cause}; server log: {' | '.join(server_log[-4:])}"
    return ServabilityReport(passed=cause is None, cause=cause, **report)
